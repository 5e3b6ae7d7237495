"""Following commands after they are sent: results, deliveries, expiry and dead letters.

- `apply_result` records a daemon's `command.result` (called by the event consumer);
- `track_commands` (run under the sweep lease) marks commands the daemon holds unacknowledged
  as `delivered`, commands nobody picked up before expiry as `expired`, and commands its
  consumer gave up on (`…:commands:dead`) as `dead_lettered`.

Every update is conditional on the command not having finished, so replays and a second
replica change nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker, BrokerError, GroupNotFound, dead_letter_stream
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import CommandStatus
from stellarstack.panel.db.models import NodeCommand
from stellarstack.panel.domain.commands.service import FINISHED
from stellarstack.protocol import keys
from stellarstack.protocol.commands import CommandStatus as Outcome
from stellarstack.protocol.events import CommandResult

__all__ = ["EXPIRED_UNDELIVERED", "apply_result", "track_commands"]

log = get_logger(__name__)

EXPIRED_UNDELIVERED = "expired before the node picked it up"
"""Error of a command the panel expired itself; a later daemon outcome replaces it."""

EXPIRY_GRACE = timedelta(seconds=30)
"""How long past its expiry an undelivered command waits before the panel gives up on it."""

_OUTCOMES = {
    Outcome.COMPLETED: CommandStatus.SUCCEEDED,
    Outcome.FAILED: CommandStatus.FAILED,
    Outcome.EXPIRED: CommandStatus.EXPIRED,
    Outcome.REJECTED: CommandStatus.FAILED,
}

_UNFINISHED = sa.or_(
    NodeCommand.status.not_in(FINISHED),
    sa.and_(
        NodeCommand.status == CommandStatus.EXPIRED,
        NodeCommand.error == EXPIRED_UNDELIVERED,
    ),
)


def _parse_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def apply_result(
    db: AsyncSession, node_id: uuid.UUID, result: CommandResult, *, at: datetime
) -> bool:
    """Record a daemon's outcome for one of *its* commands; False if unknown or finished."""
    command_id = _parse_id(result.command_id)
    if command_id is None:
        log.warning("commands.result_unmatched", node_id=str(node_id), id=result.command_id)
        return False
    updated = await db.execute(
        sa.update(NodeCommand)
        .where(NodeCommand.id == command_id, NodeCommand.node_id == node_id, _UNFINISHED)
        .values(
            status=_OUTCOMES[result.status],
            result=result.result or None,
            error=result.error,
            finished_at=at,
            delivered_at=sa.func.coalesce(NodeCommand.delivered_at, at),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(updated.rowcount)  # type: ignore[attr-defined]


async def track_commands(db: AsyncSession, broker: Broker, *, at: datetime | None = None) -> None:
    """Deliveries, expiry and dead letters of every unfinished command; commits."""
    now = at or datetime.now(UTC)
    await _expire_undelivered(db, now)
    rows = await db.execute(
        sa.select(NodeCommand.node_id, NodeCommand.status)
        .where(NodeCommand.status.in_((CommandStatus.QUEUED, CommandStatus.DELIVERED)))
        .distinct()
    )
    by_node: dict[uuid.UUID, set[CommandStatus]] = {}
    for node_id, status in rows:
        by_node.setdefault(node_id, set()).add(status)
    for node_id, statuses in by_node.items():
        try:
            if CommandStatus.QUEUED in statuses:
                await _mark_delivered(db, broker, node_id, now)
            await _collect_dead_letters(db, broker, node_id, now)
        except BrokerError as exc:
            log.warning("commands.tracking_failed", node_id=str(node_id), error=str(exc))
    await db.commit()


async def _expire_undelivered(db: AsyncSession, now: datetime) -> None:
    await db.execute(
        sa.update(NodeCommand)
        .where(
            NodeCommand.status == CommandStatus.QUEUED,
            NodeCommand.expires_at < now - EXPIRY_GRACE,
        )
        .values(status=CommandStatus.EXPIRED, error=EXPIRED_UNDELIVERED, finished_at=now)
        .execution_options(synchronize_session=False)
    )


async def _mark_delivered(
    db: AsyncSession, broker: Broker, node_id: uuid.UUID, now: datetime
) -> None:
    """Entries pending in the daemon's group have reached it (and are not yet acknowledged)."""
    stream = keys.node_commands_stream(str(node_id))
    try:
        pending = await broker.pending(stream, keys.COMMANDS_GROUP, count=1000)
    except GroupNotFound:
        return  # the daemon has not started reading yet
    for entry in pending:
        await db.execute(
            sa.update(NodeCommand)
            .where(
                NodeCommand.node_id == node_id,
                NodeCommand.stream_id == entry.id,
                NodeCommand.status == CommandStatus.QUEUED,
            )
            .values(status=CommandStatus.DELIVERED, delivered_at=now, attempts=entry.deliveries)
            .execution_options(synchronize_session=False)
        )


async def _collect_dead_letters(
    db: AsyncSession, broker: Broker, node_id: uuid.UUID, now: datetime
) -> None:
    """Commands the daemon's consumer gave up on, read once through the panel's group."""
    stream = dead_letter_stream(keys.node_commands_stream(str(node_id)))
    await broker.ensure_group(stream, keys.EVENTS_GROUP)
    while letters := await broker.read_group(stream, keys.EVENTS_GROUP, "tracker", count=100):
        for letter in letters:
            command_id = _parse_id(letter.fields.get("id", ""))
            if command_id is not None:
                error = letter.fields.get("_error") or "the node gave up on this command"
                await db.execute(
                    sa.update(NodeCommand)
                    .where(
                        NodeCommand.id == command_id,
                        NodeCommand.node_id == node_id,
                        NodeCommand.status.not_in(FINISHED),
                    )
                    .values(
                        status=CommandStatus.DEAD_LETTERED,
                        error=f"dead-lettered after {letter.fields.get('_deliveries')} "
                        f"deliveries: {error}"[:2000],
                        finished_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
            log.error("commands.dead_lettered", node_id=str(node_id), id=letter.fields.get("id"))
        await db.commit()
        await broker.ack(stream, keys.EVENTS_GROUP, *(letter.id for letter in letters))
