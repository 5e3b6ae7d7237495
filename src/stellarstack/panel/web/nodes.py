"""Node pages: the node list with live status, adding a node, node detail with live metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import ValidationError
from starlette.responses import Response

from stellarstack.panel.daemon_client import DaemonClient, DaemonUnavailable
from stellarstack.panel.db.enums import ActorType
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import DbSession, SettingsDep, client_ip
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.nodes import allocations as alloc
from stellarstack.panel.domain.nodes import service
from stellarstack.panel.domain.nodes.daemon_client import daemon_health, unavailable_reason
from stellarstack.panel.domain.nodes.registration import create_registration_token
from stellarstack.panel.domain.nodes.schemas import (
    AllocationCreate,
    NodeUpdate,
    RegistrationTokenCreate,
)
from stellarstack.panel.errors import PanelError, ValidationFailed
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.routes import AdminUser as NodeAdmin
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import redirect

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

STATUS_ACTIONS = {"draining": "Drain", "maintenance": "Maintenance", "active": "Activate"}


def _actor(request: Request, user: User) -> Actor:
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=client_ip(request))


def _message(exc: PanelError | ValidationError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    if isinstance(exc, ValidationFailed):
        return "; ".join(e.message for e in exc.errors) or (exc.detail or "Invalid input.")
    return exc.detail or "That did not work."


@router.get("/nodes")
async def node_list(request: Request, user: NodeAdmin, db: DbSession) -> Response:
    """Every node with its status, refreshed every few seconds."""
    nodes = [service.node_out(n) for n in await service.list_nodes(db, limit=500)]
    return render(request, "nodes/list.html", user=user, nodes=nodes)


@router.get("/nodes/rows")
async def node_rows(request: Request, user: NodeAdmin, db: DbSession) -> Response:
    """The node table's rows alone (htmx polls this for live status)."""
    nodes = [service.node_out(n) for n in await service.list_nodes(db, limit=500)]
    return render(request, "nodes/_rows.html", user=user, nodes=nodes)


@router.get("/nodes/new")
async def add_node_form(request: Request, user: NodeAdmin) -> Response:
    """The "add node" form: name, region, capacity."""
    return render(request, "nodes/new.html", user=user, values={}, error=None)


@router.post("/nodes/new")
async def add_node(
    request: Request,
    user: NodeAdmin,
    db: DbSession,
    settings: SettingsDep,
    name: Annotated[str, Form(max_length=256)] = "",
    region: Annotated[str, Form(max_length=256)] = "default",
    max_servers: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Create a registration token and show the one-line install command (once)."""
    values = {"name": name, "region": region, "max_servers": max_servers}
    try:
        body = RegistrationTokenCreate(
            name=name, region=region or "default", max_servers=max_servers.strip() or None
        )
        out, row = await create_registration_token(db, body, user, settings)
    except (ValidationError, PanelError) as exc:
        status = 422 if isinstance(exc, ValidationError) else exc.status
        return render(
            request, "nodes/new.html", user=user, values=values, error=_message(exc),
            status_code=status,
        )  # fmt: skip
    await record(db, _actor(request, user), "node.token.create", "node_registration_token",
                 row.id, details={"name": body.name, "region": body.region})  # fmt: skip
    return render(request, "nodes/added.html", user=user, token=out)


@router.get("/nodes/{node_id}")
async def node_detail(request: Request, node_id: str, user: NodeAdmin, db: DbSession) -> Response:
    """One node: status, capacity, live heartbeat charts, allocations."""
    node = await service.get_node(db, node_id)
    allocations = await alloc.list_allocations(db, node.id)
    servers = await service.node_servers(db, node)
    return render(
        request, "nodes/detail.html", user=user, node=service.node_out(node),
        allocations=allocations, servers=servers, actions=STATUS_ACTIONS,
    )  # fmt: skip


@router.post("/nodes/{node_id}/allocations")
async def add_allocations(
    request: Request,
    node_id: str,
    user: NodeAdmin,
    db: DbSession,
    ip: Annotated[str, Form(max_length=64)] = "",
    ports: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Add ports from the detail page's form (comma-separated ports and ranges)."""
    node = await service.get_node(db, node_id)
    response = redirect(request, f"/nodes/{node.id}")
    try:
        specs = [p for p in ports.replace(" ", "").split(",") if p][:100]
        created = await alloc.add_allocations(db, node, AllocationCreate(ip=ip, ports=specs))
    except (ValidationError, PanelError) as exc:
        set_flashes(response, request, Flash(f"No ports were added: {_message(exc)}", "error"))
        return response
    await record(db, _actor(request, user), "node.allocations.create", "node", node.id,
                 details={"ip": created[0].ip, "ports": len(created)})  # fmt: skip
    set_flashes(response, request, Flash(f"Added {len(created)} port(s) on {created[0].ip}.",
                                         "success"))  # fmt: skip
    return response


@router.post("/nodes/{node_id}/status")
async def change_status(
    request: Request,
    node_id: str,
    user: NodeAdmin,
    db: DbSession,
    status: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Drain, pause for maintenance, or re-activate a node."""
    node = await service.get_node(db, node_id)
    response = redirect(request, f"/nodes/{node.id}")
    try:
        changes = await service.update_node(db, node, NodeUpdate.model_validate({"status": status}))
    except (ValidationError, PanelError) as exc:
        set_flashes(response, request, Flash(f"Status unchanged: {_message(exc)}", "error"))
        return response
    if changes:
        await record(db, _actor(request, user), "node.update", "node", node.id, details=changes)
    set_flashes(response, request, Flash(f"{node.name} is now {node.status.value}.", "success"))
    return response


@router.get("/nodes/{node_id}/daemon")
async def daemon_check(request: Request, node_id: str, user: NodeAdmin, db: DbSession) -> Response:
    """Ask the node's daemon now through the panel's daemon client (an htmx fragment)."""
    node = await service.get_node(db, node_id)
    client: DaemonClient = request.app.state.daemon_client
    try:
        health, problem = await daemon_health(client, node), None
    except DaemonUnavailable as exc:
        health, problem = None, unavailable_reason(node.name, exc)
    return render(request, "nodes/_daemon.html", user=user, health=health, problem=problem)
