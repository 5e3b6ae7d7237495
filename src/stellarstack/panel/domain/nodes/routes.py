"""`/api/v1/nodes`: node administration and allocations (admins; spec §14.3)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from stellarstack.panel.daemon_client import DaemonClient
from stellarstack.panel.db.enums import ActorType
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import DbSession, client_ip
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.nodes import allocations as alloc
from stellarstack.panel.domain.nodes import service
from stellarstack.panel.domain.nodes.access import NodeEditor, NodeRemover, NodeViewer
from stellarstack.panel.domain.nodes.pki import NodePki, node_pki
from stellarstack.panel.domain.nodes.schemas import (
    AllocationBatch,
    AllocationCreate,
    AllocationOut,
    NodeCredentialsOut,
    NodeOut,
    NodeServerOut,
    NodeStats,
    NodeUpdate,
)
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/nodes", tags=["nodes"])

PkiDep = Annotated[NodePki, Depends(node_pki)]


def _actor(request: Request, user: User) -> Actor:
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=client_ip(request))


@router.get("")
async def list_nodes(
    user: NodeViewer,
    db: DbSession,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=200)] = 50,
) -> Envelope[list[NodeOut]]:
    """List nodes with their status and version compatibility."""
    nodes = await service.list_nodes(db, offset=(page - 1) * per_page, limit=per_page)
    total = await service.count_nodes(db)
    meta: dict[str, object] = {"page": page, "perPage": per_page, "total": total}
    return ok([service.node_out(n) for n in nodes], meta)


@router.get("/{node_id}")
async def get_node(node_id: str, user: NodeViewer, db: DbSession) -> Envelope[NodeOut]:
    """Get one node."""
    return ok(service.node_out(await service.get_node(db, node_id)))


@router.patch("/{node_id}")
async def update_node(
    request: Request, node_id: str, body: NodeUpdate, user: NodeEditor, db: DbSession
) -> Envelope[NodeOut]:
    """Update a node; `status` may be draining, maintenance or active."""
    node = await service.get_node(db, node_id)
    changes = await service.update_node(db, node, body)
    if changes:
        await record(db, _actor(request, user), "node.update", "node", node.id, details=changes)
    return ok(service.node_out(node))


@router.delete("/{node_id}", status_code=204)
async def delete_node(
    request: Request, node_id: str, user: NodeRemover, db: DbSession, pki: PkiDep
) -> Response:
    """Remove a node that hosts no servers; its credentials stop working."""
    node = await service.get_node(db, node_id)
    await service.delete_node(db, node, pki.credentials)
    await record(
        db, _actor(request, user), "node.delete", "node", node.id, details={"name": node.name}
    )
    await db.commit()  # the event consumer must no longer find the node when it looks
    service.rediscover_nodes(request.app.state)
    client: DaemonClient | None = getattr(request.app.state, "daemon_client", None)
    if client is not None:
        await client.forget(node.id)
    return Response(status_code=204)


@router.post("/{node_id}/token")
async def rotate_token(
    request: Request, node_id: str, user: NodeEditor, db: DbSession, pki: PkiDep
) -> Envelope[NodeCredentialsOut]:
    """Issue a new node API token (shown once); the old one is revoked at once."""
    node = await service.get_node(db, node_id)
    token = await service.rotate_node_token(db, node, pki.credentials)
    await record(db, _actor(request, user), "node.token.rotate", "node", node.id)
    return ok(NodeCredentialsOut(node_id=node.id, api_token=token))


@router.get("/{node_id}/servers")
async def list_servers(
    node_id: str, user: NodeViewer, db: DbSession
) -> Envelope[list[NodeServerOut]]:
    """List the servers on a node."""
    node = await service.get_node(db, node_id)
    servers = await service.node_servers(db, node)
    return ok([NodeServerOut.model_validate(s) for s in servers])


@router.get("/{node_id}/allocations")
async def list_allocations(
    node_id: str, user: NodeViewer, db: DbSession
) -> Envelope[list[AllocationOut]]:
    """List a node's allocations (IP:port, and the server using each)."""
    node = await service.get_node(db, node_id)
    return ok([AllocationOut.model_validate(a) for a in await alloc.list_allocations(db, node.id)])


@router.post("/{node_id}/allocations", status_code=201)
async def add_allocations(
    request: Request, node_id: str, body: AllocationCreate, user: NodeEditor, db: DbSession
) -> Envelope[AllocationBatch]:
    """Add an IP with ports and ranges (at most 1000 ports, none already present)."""
    node = await service.get_node(db, node_id)
    created = await alloc.add_allocations(db, node, body)
    await record(
        db,
        _actor(request, user),
        "node.allocations.create",
        "node",
        node.id,
        details={"ip": created[0].ip, "ports": len(created)},
    )
    outs = [AllocationOut.model_validate(a) for a in created]
    return ok(AllocationBatch(created=len(outs), allocations=outs))


@router.delete("/{node_id}/allocations/{allocation_id}", status_code=204)
async def delete_allocation(
    request: Request, node_id: str, allocation_id: uuid.UUID, user: NodeEditor, db: DbSession
) -> Response:
    """Remove a free allocation."""
    node = await service.get_node(db, node_id)
    gone = await alloc.delete_allocation(db, node, allocation_id)
    await record(
        db,
        _actor(request, user),
        "node.allocations.delete",
        "node",
        node.id,
        details={"ip": gone.ip, "port": gone.port},
    )
    return Response(status_code=204)


@router.get("/{node_id}/stats")
async def node_stats(node_id: str, user: NodeViewer, db: DbSession) -> Envelope[NodeStats]:
    """The node's latest heartbeat metrics (the detail page polls this for its charts)."""
    return ok(service.node_stats(await service.get_node(db, node_id)))
