"""Commands API: send a command to a node, follow it, ping a node, probe its daemon.

- `GET  /api/v1/commands/{id}?wait=S` — a command (admins, or the owner of its server);
  `wait` long-polls up to S seconds for it to finish.
- `POST /api/v1/nodes/{id}/commands` — `node.settings`: queue any command type for a node (202).
- `POST /api/v1/nodes/{id}/ping?wait=S` — `node.settings`: a `node.ping` round trip through the
  broker.
- `GET  /api/v1/nodes/{id}/health` — `node.view`: ask the daemon over HTTPS verified with the
  panel CA and the node id (503 when it does not answer or is not trusted; 503 at once, with
  Retry-After, while its circuit breaker is open).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, status

from stellarstack.panel.daemon_client import DaemonClient, DaemonUnavailable
from stellarstack.panel.db.enums import ActorType, Role
from stellarstack.panel.db.models import Node, NodeCommand, Server, User
from stellarstack.panel.deps import BrokerDep, CurrentUser, DbSession, SettingsDep, get_database
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.commands.schemas import CommandOut, NewCommand
from stellarstack.panel.domain.commands.service import FINISHED, send_command, wait_for
from stellarstack.panel.domain.nodes.access import NodeEditor, NodeViewer
from stellarstack.panel.domain.nodes.daemon_client import daemon_health, unavailable_reason
from stellarstack.panel.domain.nodes.schemas import DaemonProbeOut
from stellarstack.panel.errors import DependencyUnavailable, NotFound
from stellarstack.panel.schemas import Envelope, ok
from stellarstack.protocol.commands import CommandType

__all__ = ["router"]

router = APIRouter(tags=["commands"])

ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
MAX_WAIT = 10.0

Wait = Annotated[float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for the outcome.")]


async def _node(db: DbSession, node_id: uuid.UUID) -> Node:
    node = await db.get(Node, node_id)
    if node is None:
        raise NotFound("No such node.")
    return node


async def _visible_command(db: DbSession, user: User, command_id: uuid.UUID) -> NodeCommand:
    command = await db.get(NodeCommand, command_id)
    if command is None:
        raise NotFound("No such command.")
    if user.role in ADMIN_ROLES:
        return command
    owner = None
    if command.server_id is not None:
        owner = await db.scalar(sa.select(Server.owner_id).where(Server.id == command.server_id))
    if owner != user.id:
        raise NotFound("No such command.")  # not "forbidden": do not confirm it exists
    return command


async def _settled(
    request: Request, db: DbSession, command: NodeCommand, wait: float
) -> CommandOut:
    """The command as it is now, or once finished when the caller waits for it."""
    if wait <= 0 or command.status in FINISHED:
        return CommandOut.model_validate(command)
    await db.close()  # do not hold a pooled connection while polling
    finished = await wait_for(get_database(request), command.id, within=wait)
    return CommandOut.model_validate(finished or command)


def _actor(request: Request, user: User) -> Actor:
    ip = request.client.host if request.client else None
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=ip)


@router.get("/commands/{command_id}", response_model=Envelope[CommandOut])
async def get_command(
    command_id: uuid.UUID, request: Request, db: DbSession, user: CurrentUser, wait: Wait = 0
) -> Envelope[CommandOut]:
    """A command and its outcome (admins, or the owner of the command's server)."""
    command = await _visible_command(db, user, command_id)
    return ok(await _settled(request, db, command, wait))


@router.post(
    "/nodes/{node_id}/commands",
    response_model=Envelope[CommandOut],
    status_code=status.HTTP_202_ACCEPTED,
)
async def queue_command(
    node_id: uuid.UUID,
    body: NewCommand,
    request: Request,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    user: NodeEditor,
) -> Envelope[CommandOut]:
    """Queue a command for a node's daemon (`node.settings`); follow it at `/commands/{id}`."""
    node = await _node(db, node_id)
    command = await send_command(
        db,
        broker,
        node,
        body.type,
        body.payload,
        ttl=body.ttl or settings.command_ttl,
        max_payload_bytes=settings.command_max_payload_bytes,
    )
    await record(
        db,
        _actor(request, user),
        "node.command",
        "node",
        node.id,
        details={"commandId": str(command.id), "type": command.type},
    )
    return ok(CommandOut.model_validate(command))


@router.post("/nodes/{node_id}/ping", response_model=Envelope[CommandOut])
async def ping_node(
    node_id: uuid.UUID,
    request: Request,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    user: NodeEditor,
    wait: Wait = 5.0,
) -> Envelope[CommandOut]:
    """Send `node.ping` through the broker and wait up to `wait` seconds for the answer."""
    node = await _node(db, node_id)
    ttl = max(1.0, math.ceil(wait) + 5.0)
    command = await send_command(
        db,
        broker,
        node,
        CommandType.NODE_PING,
        ttl=ttl,
        max_payload_bytes=settings.command_max_payload_bytes,
    )
    return ok(await _settled(request, db, command, wait))


@router.get("/nodes/{node_id}/health", response_model=Envelope[DaemonProbeOut])
async def probe_node(
    node_id: uuid.UUID, request: Request, db: DbSession, user: NodeViewer
) -> Envelope[DaemonProbeOut]:
    """Ask the node's daemon for its health over verified TLS; 503 when it cannot be trusted."""
    node = await _node(db, node_id)
    client: DaemonClient = request.app.state.daemon_client
    try:
        health = await daemon_health(client, node)
    except DaemonUnavailable as exc:
        raise DependencyUnavailable(
            unavailable_reason(node.name, exc),
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
        ) from exc
    return ok(DaemonProbeOut.model_validate(asdict(health)))
