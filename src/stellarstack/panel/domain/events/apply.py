"""Apply one node event to the database: heartbeats, command results, server events.

Called by the event consumer for each entry of a node's event stream. The node is the one
whose stream the entry came from; an event naming another node, or a server or command of
another node, changes nothing (a node's credentials can write only its own stream).
Server status, deployments, alerts and console audit are in `server_events`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node
from stellarstack.panel.domain.commands.tracking import apply_result
from stellarstack.panel.domain.events import server_events
from stellarstack.protocol.events import (
    CommandResult,
    DeploymentProgress,
    Event,
    EventType,
    NodeAlert,
    NodeHeartbeat,
    ServerStatusChange,
)

__all__ = ["CONSOLE_PREFIX", "RECOVERABLE", "Applied", "apply_event"]

log = get_logger(__name__)

CONSOLE_PREFIX = "console."
"""Events the daemon's console publishes for the audit log (`console.command_sent`, …)."""

RECOVERABLE = (NodeStatus.UNHEALTHY, NodeStatus.OFFLINE, NodeStatus.STARTING)
"""Statuses a fresh heartbeat turns back into ONLINE (never DRAINING or MAINTENANCE)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying an event changed that others should hear about."""

    node_status: tuple[NodeStatus, NodeStatus] | None = None
    """(previous, new) when the node's status changed."""


async def apply_event(
    db: AsyncSession,
    node_id: uuid.UUID,
    event: Event,
    *,
    seen_at: datetime,
    fresh_within: timedelta,
) -> Applied:
    """Apply `event` from node `node_id`'s stream (not committed); `seen_at` is its stream time.

    A heartbeat older than `fresh_within` (a backlog replayed after an outage) updates the
    metrics but does not bring the node back online.
    """
    kind = event.known_type
    if kind is EventType.NODE_HEARTBEAT:
        return await _heartbeat(db, node_id, event.data_as(NodeHeartbeat), seen_at, fresh_within)
    if kind is EventType.COMMAND_RESULT:
        result = event.data_as(CommandResult)
        await apply_result(db, node_id, result, at=seen_at)
        await server_events.apply_install_result(db, node_id, result, at=seen_at)
    elif kind is EventType.SERVER_STATUS and event.server_id is not None:
        change = event.data_as(ServerStatusChange)
        at = _event_time(event)
        await server_events.apply_server_status(db, node_id, event.server_id, change, at=at)
    elif kind is EventType.DEPLOYMENT_PROGRESS:
        progress = event.data_as(DeploymentProgress)
        await server_events.apply_deployment_progress(db, node_id, progress, at=seen_at)
    elif kind is EventType.NODE_ALERT:
        await server_events.apply_alert(db, node_id, event.server_id, event.data_as(NodeAlert))
    elif event.type.startswith(CONSOLE_PREFIX):
        await server_events.apply_console_audit(db, node_id, event)
    return Applied()


def _event_time(event: Event) -> datetime:
    """When the daemon says the event happened (its own clock: compared only with itself)."""
    return datetime.fromtimestamp(event.timestamp, UTC)


async def _heartbeat(
    db: AsyncSession,
    node_id: uuid.UUID,
    beat: NodeHeartbeat,
    seen_at: datetime,
    fresh_within: timedelta,
) -> Applied:
    metrics = {**beat.metrics.to_wire(), "health": beat.status.value}
    if beat.runtime:
        metrics["runtime"] = beat.runtime[:32]
    values: dict[str, object] = {"last_heartbeat_at": seen_at, "last_metrics": metrics}
    if beat.version:
        values["daemon_version"] = beat.version[:64]
    await db.execute(
        sa.update(Node)
        .where(
            Node.id == node_id,
            sa.or_(Node.last_heartbeat_at.is_(None), Node.last_heartbeat_at < seen_at),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if datetime.now(UTC) - seen_at > fresh_within:
        return Applied()
    previous = await db.scalar(sa.select(Node.status).where(Node.id == node_id))
    if previous not in RECOVERABLE:
        return Applied()
    updated = await db.execute(
        sa.update(Node)
        .where(Node.id == node_id, Node.status == previous)
        .values(status=NodeStatus.ONLINE)
        .execution_options(synchronize_session=False)
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        return Applied()
    assert previous is not None
    return Applied(node_status=(previous, NodeStatus.ONLINE))
