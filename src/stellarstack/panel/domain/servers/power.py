"""Power actions and reinstall: the panel's side of a server's lifecycle (issue #5 §4).

The panel only *asks*: it checks that the server may be operated (not suspended, not
installing, its node reachable), that no other power action for it is still on its way, then
queues `server.start|stop|restart|kill` (or `server.reinstall`) on the node's command stream.
How a server stops (console command or signal, grace period) is in the ServerSpec the daemon
already holds; the status that follows arrives as `server.status` events (`events/apply.py`).
A start or restart carries the server's ServerSpec as its rows say now (without the install
script), so saved resources, variables and version apply at that start; a spec that cannot
be rendered any more (a broken blueprint) is left out and the daemon starts what it has.

One power action at a time: the check and the new command happen under a lock on the server's
row (a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so two clicks racing
each other queue one command and get one 409.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.blueprints import BlueprintError
from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import Broker
from stellarstack.logs import get_logger
from stellarstack.panel.auth.permissions import ServerAccess
from stellarstack.panel.db.enums import (
    AuditStatus,
    CommandStatus,
    DeploymentKind,
    DeploymentStatus,
    NodeStatus,
    ServerStatus,
)
from stellarstack.panel.db.models import (
    Allocation,
    Deployment,
    Node,
    NodeCommand,
    Server,
    ServerVariable,
)
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.blueprints.service import find_blueprint, spec_of
from stellarstack.panel.domain.commands.service import send_command
from stellarstack.panel.domain.servers.lifecycle import ensure_not_suspended
from stellarstack.panel.domain.servers.schemas import PowerAction
from stellarstack.panel.domain.servers.spec import build_spec
from stellarstack.panel.domain.servers.variables import check_values
from stellarstack.panel.errors import (
    Conflict,
    DependencyUnavailable,
    NotFound,
    PanelError,
    ValidationFailed,
)
from stellarstack.protocol.commands import CommandType, ServerPowerPayload
from stellarstack.protocol.servers import ServerSpec
from stellarstack.settings import PanelSettings

__all__ = [
    "BUSY_COMMANDS",
    "INSTALL_COMMANDS",
    "POWER_COMMANDS",
    "POWER_TTL",
    "busy_error",
    "check_operable",
    "install_in_flight",
    "lock_server",
    "pending_command",
    "reachable_node",
    "refusals_audited",
    "request_power",
    "request_reinstall",
]

log = get_logger(__name__)

POWER_COMMANDS: dict[str, CommandType] = {
    "start": CommandType.SERVER_START,
    "stop": CommandType.SERVER_STOP,
    "restart": CommandType.SERVER_RESTART,
    "kill": CommandType.SERVER_KILL,
}
"""Power action → the command the daemon runs."""

BUSY_COMMANDS = frozenset({*POWER_COMMANDS.values(), CommandType.SERVER_REINSTALL})
"""Commands that, while on their way, make a server refuse another power action."""

POWER_TTL = 60.0
"""Seconds a power command stays valid: a click older than a minute is no longer wanted."""

OPERABLE_NODE = frozenset({NodeStatus.ONLINE, NodeStatus.DRAINING})
"""Node statuses that take power commands (a draining node still runs its servers)."""

SPEC_PAYLOAD_BYTES = 512 * 1024
"""A ServerSpec carries the install script: allow it the size `server.create` gets."""

_INSTALLING = frozenset({ServerStatus.INSTALLING, ServerStatus.REINSTALLING})
INSTALL_COMMANDS = (CommandType.SERVER_CREATE.value, CommandType.SERVER_REINSTALL.value)
_WAS_RUNNING = frozenset({ServerStatus.STARTING, ServerStatus.RUNNING})
_STARTS = frozenset({"start", "restart"})


async def lock_server(db: AsyncSession, server: Server) -> Server:
    """Lock the server's row until the next commit and return it freshly read."""
    await db.execute(
        sa.update(Server)
        .where(Server.id == server.id)
        .values(updated_at=Server.updated_at)
        .execution_options(synchronize_session=False)
    )
    fresh = await db.get(Server, server.id, populate_existing=True)
    if fresh is None:  # deleted between the permission check and the lock
        raise NotFound("There is no server with this id.")
    return fresh


def check_operable(
    server: Server, *, for_reinstall: bool = False, install_stuck: bool = False
) -> None:
    """Refuse (409) a suspended server, one still installing, or (power) a failed install.

    A reinstall may rescue a server stuck installing (`install_stuck`: no install command of
    it is on its way any more, so no status will ever follow).
    """
    ensure_not_suspended(server)
    if server.status in _INSTALLING and not (for_reinstall and install_stuck):
        raise Conflict(
            f"Server {server.name!r} is still installing; wait for the install to finish."
        )
    if server.status == ServerStatus.INSTALL_FAILED and not for_reinstall:
        raise Conflict(
            f"Server {server.name!r} failed to install ({server.install_error or 'no reason'}); "
            "reinstall it before starting it."[:1000]
        )


async def reachable_node(db: AsyncSession, server: Server, settings: PanelSettings) -> Node:
    """The server's node if it takes commands now: 409 in maintenance, 503 when unreachable."""
    node = await db.get(Node, server.node_id)
    if node is None:  # pragma: no cover - a RESTRICT foreign key keeps the node
        raise NotFound("The server's node no longer exists.")
    if node.status == NodeStatus.MAINTENANCE:
        raise Conflict(f"Node {node.name!r} is in maintenance; power actions resume when it ends.")
    if node.status not in OPERABLE_NODE:
        retry = max(1, round(settings.heartbeat_interval))
        raise DependencyUnavailable(
            f"Node {node.name!r} is {node.status.value}, so the server cannot be reached; "
            "nothing was sent. Try again when the node is back online.",
            headers={"Retry-After": str(retry)},
        )
    return node


async def install_in_flight(db: AsyncSession, server_id: uuid.UUID) -> bool:
    """Whether a `server.create`/`server.reinstall` of the server is queued or running."""
    found = await db.scalar(
        sa.select(NodeCommand.id)
        .where(
            NodeCommand.server_id == server_id,
            NodeCommand.type.in_(INSTALL_COMMANDS),
            NodeCommand.status.in_((CommandStatus.QUEUED, CommandStatus.DELIVERED)),
            NodeCommand.expires_at > datetime.now(UTC),
        )
        .limit(1)
    )
    return found is not None


async def pending_command(db: AsyncSession, server_id: uuid.UUID) -> NodeCommand | None:
    """A power or reinstall command for the server still queued or running, if any.

    A command past its expiry no longer counts: the daemon refuses to run it.
    """
    now = datetime.now(UTC)
    found: NodeCommand | None = await db.scalar(
        sa.select(NodeCommand)
        .where(
            NodeCommand.server_id == server_id,
            NodeCommand.type.in_([t.value for t in BUSY_COMMANDS]),
            NodeCommand.status.in_((CommandStatus.QUEUED, CommandStatus.DELIVERED)),
            NodeCommand.expires_at > now,
        )
        .order_by(NodeCommand.created_at.desc())
        .limit(1)
    )
    return found


def busy_error(command: NodeCommand) -> Conflict:
    """The 409 for a server with a command still on its way."""
    action = command.type.removeprefix("server.")
    return Conflict(
        f"Another power action is in progress ({action}, sent "
        f"{command.created_at:%H:%M:%S} UTC); wait for it to finish."
    )


@asynccontextmanager
async def refusals_audited(
    db: AsyncSession, access: ServerAccess, action: str
) -> AsyncIterator[None]:
    """Record a refused action (409) as a failure, committed after the request rolls back.

    Here rather than in the routes so every caller (API, pages) leaves the same trail.
    """
    actor, server_id = access.principal.actor, access.server.id  # a rollback expires rows
    try:
        yield
    except Conflict as exc:
        await db.rollback()
        await record(
            db,
            actor,
            action,
            "server",
            server_id,
            status=AuditStatus.FAILURE,
            error=exc.detail or "refused",
        )
        await db.commit()
        raise


async def request_power(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    access: ServerAccess,
    action: PowerAction,
) -> NodeCommand:
    """Queue one power action for the server (committed) and audit it.

    Raises Conflict (suspended, installing, failed install, busy, node in maintenance) and
    DependencyUnavailable (node unreachable or broker down); a 409 is audited as a refusal.
    """
    async with refusals_audited(db, access, f"server.power.{action}"):
        server = await lock_server(db, access.server)
        check_operable(server)
        node = await reachable_node(db, server, settings)
        busy = await pending_command(db, server.id)
        if busy is not None:
            raise busy_error(busy)
        spec = await _start_spec(db, server) if action in _STARTS else None
        payload = ServerPowerPayload(server_id=str(server.id), spec=spec)
        command = await send_command(
            db,
            broker,
            node,
            POWER_COMMANDS[action],
            payload.to_wire(),
            ttl=POWER_TTL,
            max_payload_bytes=max(settings.command_max_payload_bytes, SPEC_PAYLOAD_BYTES),
        )
    await record(
        db,
        access.principal.actor,
        f"server.power.{action}",
        "server",
        server.id,
        details={"commandId": str(command.id), "nodeId": str(node.id)},
    )
    log.info("servers.power", server_id=str(server.id), action=action, command_id=str(command.id))
    return command


async def _blueprint_spec(db: AsyncSession, server: Server) -> BlueprintSpec:
    """The server's blueprint, parsed (a disabled blueprint still reinstalls its servers)."""
    row = await find_blueprint(db, str(server.blueprint_id))
    try:
        if row is None:
            raise BlueprintError("it no longer exists")
        return spec_of(row)
    except BlueprintError as exc:
        raise _unrenderable(exc) from exc


def _unrenderable(exc: BlueprintError) -> Conflict:
    return Conflict(
        f"The server's blueprint cannot be rendered ({exc}); an administrator must fix "
        "the blueprint before this server can be reinstalled."[:2000]
    )


async def _start_spec(db: AsyncSession, server: Server) -> ServerSpec | None:
    """The spec a start carries: the current one without its install script, or None."""
    try:
        spec = await _current_spec(db, server, deployment_id=None, start=True)
    except Conflict as exc:
        log.warning("servers.start_spec_unrenderable", server_id=str(server.id), error=exc.detail)
        return None
    return spec.model_copy(update={"install": None})


async def _payload(
    db: AsyncSession, server: Server, deployment: Deployment, *, start: bool
) -> dict[str, Any]:
    """The `server.reinstall` payload: the ServerSpec as the server's rows say now."""
    spec = await _current_spec(db, server, deployment_id=str(deployment.id), start=start)
    return spec.to_wire()


async def _current_spec(
    db: AsyncSession, server: Server, *, deployment_id: str | None, start: bool
) -> ServerSpec:
    """The ServerSpec as the server's rows say now (Conflict when it cannot be rendered).

    Variables the blueprint added since the server was made take their defaults.
    """
    spec = await _blueprint_spec(db, server)
    stored = await db.scalars(
        sa.select(ServerVariable).where(ServerVariable.server_id == server.id)
    )
    allocations = await db.scalars(sa.select(Allocation).where(Allocation.server_id == server.id))
    try:
        values = check_values(
            spec, {}, version=server.version_tag, current={v.key: v.value for v in stored}
        )
        built = build_spec(
            server,
            spec,
            values,
            list(allocations),
            deployment_id=deployment_id,
            start_on_completion=start,
        )
    except ValidationFailed as exc:
        wrong = "; ".join(f"{e.field}: {e.message}" for e in exc.errors[:5])
        raise Conflict(
            f"The server's variables no longer pass its blueprint's rules ({wrong}); "
            "change them before reinstalling."[:2000]
        ) from exc
    except BlueprintError as exc:
        raise _unrenderable(exc) from exc
    return built


async def request_reinstall(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    access: ServerAccess,
) -> Deployment:
    """Start a reinstall: a new deployment, status REINSTALLING, `server.reinstall` sent.

    The server's files are kept; the install script runs again and the container is rebuilt
    from the current blueprint, variables and limits. A server that was running is started
    again afterwards. Raises Conflict (suspended, installing, busy, unrenderable blueprint)
    and DependencyUnavailable (node unreachable, broker down: nothing changes).
    """
    async with refusals_audited(db, access, "server.reinstall"):
        return await _reinstall(db, broker, settings, access)


async def _reinstall(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    access: ServerAccess,
) -> Deployment:
    server = await lock_server(db, access.server)
    stuck = server.status in _INSTALLING and not await install_in_flight(db, server.id)
    check_operable(server, for_reinstall=True, install_stuck=stuck)
    node = await reachable_node(db, server, settings)
    busy = await pending_command(db, server.id)
    if busy is not None:
        raise busy_error(busy)
    previous = server.status
    deployment = Deployment(
        server_id=server.id,
        kind=DeploymentKind.REINSTALL,
        status=DeploymentStatus.PENDING,
        from_version_tag=server.version_tag,
        to_version_tag=server.version_tag,
        requested_by_id=access.principal.user.id,
    )
    db.add(deployment)
    await db.flush()
    payload = await _payload(db, server, deployment, start=previous in _WAS_RUNNING)
    server.status = ServerStatus.REINSTALLING
    server.install_error = None
    await record(
        db,
        access.principal.actor,
        "server.reinstall",
        "server",
        server.id,
        details={"deploymentId": str(deployment.id), "nodeId": str(node.id)},
    )
    try:
        await send_command(
            db,
            broker,
            node,
            CommandType.SERVER_REINSTALL,
            payload,
            ttl=settings.server_command_ttl,
            max_payload_bytes=max(settings.command_max_payload_bytes, SPEC_PAYLOAD_BYTES),
        )
    except PanelError as exc:
        await _undo_reinstall(db, server.id, deployment.id, previous, exc)
        raise
    log.info("servers.reinstall", server_id=str(server.id), deployment_id=str(deployment.id))
    return deployment


async def _undo_reinstall(
    db: AsyncSession,
    server_id: uuid.UUID,
    deployment_id: uuid.UUID,
    previous: ServerStatus,
    exc: PanelError,
) -> None:
    """Put the server back as it was when `server.reinstall` could not be sent."""
    await db.rollback()
    await db.execute(
        sa.update(Server)
        .where(Server.id == server_id, Server.status == ServerStatus.REINSTALLING)
        .values(status=previous)
        .execution_options(synchronize_session=False)
    )
    await db.execute(
        sa.update(Deployment)
        .where(Deployment.id == deployment_id)
        .values(
            status=DeploymentStatus.FAILED,
            error=f"not sent: {exc.detail or type(exc).__name__}"[:2000],
            finished_at=datetime.now(UTC),
        )
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    log.warning("servers.reinstall_not_sent", server_id=str(server_id), error=str(exc))
