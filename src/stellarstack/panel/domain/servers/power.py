"""Power actions and reinstall: the panel's side of a server's lifecycle (issue #5 §4).

The panel only *asks*: it checks that the server may be operated (not suspended, not
installing, its node reachable), that no other power action for it is still on its way, then
queues `server.start|stop|restart|kill` (or `server.reinstall`) on the node's command stream.
How a server stops (console command or signal, grace period) is in the ServerSpec the daemon
already holds; the status that follows arrives as `server.status` events (`events/apply.py`).

One power action at a time: the check and the new command happen under a lock on the server's
row (a no-op UPDATE: a row lock on PostgreSQL, the write lock on SQLite), so two clicks racing
each other queue one command and get one 409.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.logs import get_logger
from stellarstack.panel.auth.permissions import ServerAccess
from stellarstack.panel.db.enums import CommandStatus, NodeStatus, ServerStatus
from stellarstack.panel.db.models import Node, NodeCommand, Server
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.commands.service import send_command
from stellarstack.panel.domain.servers.schemas import PowerAction
from stellarstack.panel.errors import Conflict, DependencyUnavailable, NotFound
from stellarstack.protocol.commands import CommandType, ServerPowerPayload
from stellarstack.settings import PanelSettings

__all__ = [
    "BUSY_COMMANDS",
    "POWER_COMMANDS",
    "POWER_TTL",
    "busy_error",
    "check_operable",
    "lock_server",
    "pending_command",
    "reachable_node",
    "request_power",
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

_INSTALLING = frozenset({ServerStatus.INSTALLING, ServerStatus.REINSTALLING})


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


def check_operable(server: Server, *, for_reinstall: bool = False) -> None:
    """Refuse (409) a suspended server, one still installing, or (power) a failed install."""
    if server.suspended_at is not None or server.status == ServerStatus.SUSPENDED:
        raise Conflict(
            f"Server {server.name!r} is suspended; an administrator must unsuspend it first."
        )
    if server.status in _INSTALLING:
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


async def request_power(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    access: ServerAccess,
    action: PowerAction,
) -> NodeCommand:
    """Queue one power action for the server (committed) and audit it.

    Raises Conflict (suspended, installing, failed install, busy, node in maintenance) and
    DependencyUnavailable (node unreachable or broker down).
    """
    server = await lock_server(db, access.server)
    check_operable(server)
    node = await reachable_node(db, server, settings)
    busy = await pending_command(db, server.id)
    if busy is not None:
        raise busy_error(busy)
    payload = ServerPowerPayload(server_id=str(server.id))
    command = await send_command(
        db,
        broker,
        node,
        POWER_COMMANDS[action],
        payload.to_wire(),
        ttl=POWER_TTL,
        max_payload_bytes=settings.command_max_payload_bytes,
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
