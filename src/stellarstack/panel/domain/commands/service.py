"""Sending commands to nodes and following them to their outcome (DESIGN.md §2, spec §5.3).

A command is recorded first (`queued`, committed), then appended to the node's stream, so a
result can never arrive for a command the panel does not know. Its status then moves
`queued → delivered → succeeded | failed | expired` (or `dead_lettered`), driven by the
event consumer (results) and the tracking sweep (deliveries, expiry, dead letters).

Usage::

    command = await send_command(db, broker, node, CommandType.NODE_PING, ttl=60)
    finished = await wait_for(database, command.id, within=5)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from stellarstack.broker import Broker, BrokerError
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import CommandStatus, NodeStatus
from stellarstack.panel.db.models import Node, NodeCommand, Server
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import (
    Conflict,
    DependencyUnavailable,
    FieldError,
    PayloadTooLarge,
    ValidationFailed,
)
from stellarstack.protocol import keys
from stellarstack.protocol.commands import Command, CommandType, ServerPowerPayload
from stellarstack.protocol.errors import MalformedMessageError

__all__ = [
    "FINISHED",
    "SERVER_COMMANDS",
    "get_command",
    "send_command",
    "wait_for",
]

log = get_logger(__name__)

FINISHED = frozenset(
    {
        CommandStatus.SUCCEEDED,
        CommandStatus.FAILED,
        CommandStatus.EXPIRED,
        CommandStatus.DEAD_LETTERED,
    }
)
"""Statuses a command does not leave."""

POWER_COMMANDS = frozenset(
    {
        CommandType.SERVER_START,
        CommandType.SERVER_STOP,
        CommandType.SERVER_RESTART,
        CommandType.SERVER_KILL,
    }
)

SERVER_COMMANDS = POWER_COMMANDS | {
    CommandType.SERVER_CREATE,
    CommandType.SERVER_DELETE,
    CommandType.SERVER_REINSTALL,
    CommandType.FILES_READ,
    CommandType.FILES_WRITE,
    CommandType.FILES_DELETE,
    CommandType.BACKUP_CREATE,
    CommandType.BACKUP_RESTORE,
}
"""Command types about one server: their payload names it in `serverId`."""

NODE_COMMANDS = frozenset(
    {CommandType.NODE_PING, CommandType.NODE_UPDATE, CommandType.NODE_SHUTDOWN}
)
"""What a node in maintenance still accepts."""

MAX_TTL = 86_400.0


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, message)], detail=message)


def _command_type(value: str) -> CommandType:
    try:
        return CommandType(value)
    except ValueError:
        known = ", ".join(sorted(t.value for t in CommandType))
        raise _invalid(
            "type", f"Unknown command type {value[:64]!r}; use one of: {known}."
        ) from None


def _payload_size(payload: dict[str, Any], limit: int) -> int:
    try:
        size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise _invalid("payload", f"The payload is not plain JSON: {exc}.") from exc
    if size > limit:
        raise PayloadTooLarge(
            f"The command payload is {size} bytes; the limit is {limit} bytes. "
            "Send large data through the file API instead."
        )
    return size


def _check_node_accepts(node: Node, command_type: CommandType) -> None:
    if node.status == NodeStatus.MAINTENANCE and command_type not in NODE_COMMANDS:
        raise Conflict(
            f"Node {node.name!r} is in maintenance and accepts only node commands; "
            "end maintenance first."
        )
    if node.status == NodeStatus.DRAINING and command_type == CommandType.SERVER_CREATE:
        raise Conflict(f"Node {node.name!r} is draining; place new servers on another node.")


async def _target_server(
    db: AsyncSession, node: Node, command_type: CommandType, payload: dict[str, Any]
) -> uuid.UUID | None:
    """The server a server command names, which must live on `node`."""
    if command_type not in SERVER_COMMANDS:
        return None
    if command_type in POWER_COMMANDS:
        try:
            Command.create(command_type, payload).payload_as(ServerPowerPayload)
        except MalformedMessageError as exc:
            raise _invalid("payload", f"{exc}.") from exc
    raw = payload.get("serverId")
    if not isinstance(raw, str):
        raise _invalid("payload.serverId", f"{command_type} needs the server's id in serverId.")
    try:
        server_id = uuid.UUID(raw)
    except ValueError:
        raise _invalid("payload.serverId", "serverId is not a server id.") from None
    on_node = await db.scalar(
        sa.select(Server.id).where(Server.id == server_id, Server.node_id == node.id)
    )
    if on_node is None:
        raise _invalid("payload.serverId", "No such server on this node.")
    return server_id


async def send_command(
    db: AsyncSession,
    broker: Broker,
    node: Node,
    command_type: str,
    payload: dict[str, Any] | None = None,
    *,
    ttl: float,
    max_payload_bytes: int,
) -> NodeCommand:
    """Record a command (queued, committed) and append it to the node's command stream.

    Raises ValidationFailed (unknown type, bad payload, server not on this node),
    PayloadTooLarge, Conflict (node in maintenance or draining), DependencyUnavailable
    (broker down: the command is recorded as failed and not sent).
    """
    kind = _command_type(command_type)
    body = payload or {}
    _payload_size(body, max_payload_bytes)
    if not 0 < ttl <= MAX_TTL:
        raise _invalid("ttl", f"ttl must be between 1 and {int(MAX_TTL)} seconds.")
    _check_node_accepts(node, kind)
    server_id = await _target_server(db, node, kind, body)
    created = datetime.now(UTC)
    row = NodeCommand(
        node_id=node.id,
        server_id=server_id,
        type=kind.value,
        payload=body,
        status=CommandStatus.QUEUED,
        expires_at=created + timedelta(seconds=ttl),
        created_at=created,
    )
    db.add(row)
    await db.commit()
    envelope = Command.create(kind, body, ttl=ttl, at=created.timestamp(), id=str(row.id))
    try:
        stream_id = await broker.append(
            keys.node_commands_stream(str(node.id)),
            envelope.to_fields(),
            maxlen=keys.COMMANDS_MAXLEN,
        )
    except BrokerError as exc:
        await _mark(db, row.id, CommandStatus.FAILED, error=f"not sent: broker unavailable ({exc})")
        log.warning("commands.send_failed", id=str(row.id), node_id=str(node.id), error=str(exc))
        raise DependencyUnavailable(
            "The message broker is unavailable, so the command was not sent. Try again shortly."
        ) from exc
    # A targeted UPDATE: the result may already have been applied by the event consumer.
    await db.execute(
        sa.update(NodeCommand)
        .where(NodeCommand.id == row.id)
        .values(stream_id=stream_id)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    set_committed_value(row, "stream_id", stream_id)
    log.info("commands.sent", id=str(row.id), node_id=str(node.id), type=kind.value)
    return row


async def _mark(
    db: AsyncSession, command_id: uuid.UUID, status: CommandStatus, *, error: str
) -> None:
    await db.execute(
        sa.update(NodeCommand)
        .where(NodeCommand.id == command_id)
        .values(status=status, error=error, finished_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    await db.commit()


async def get_command(db: AsyncSession, command_id: uuid.UUID) -> NodeCommand | None:
    """One command by id, with its server loaded (for ownership checks)."""
    return await db.get(NodeCommand, command_id, populate_existing=True)


async def wait_for(
    database: Database, command_id: uuid.UUID, *, within: float, poll: float = 0.02
) -> NodeCommand | None:
    """Poll until the command finishes or `within` seconds pass; return its last state.

    Polling the database works whichever replica applies the result.
    """
    deadline = time.monotonic() + within
    while True:
        async with database.sessionmaker() as db:
            command = await db.get(NodeCommand, command_id)
        if command is None or command.status in FINISHED or time.monotonic() >= deadline:
            return command
        await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
