"""The node health sweep: nodes that stop heartbeating go UNHEALTHY, then OFFLINE.

A node is UNHEALTHY once its last heartbeat is older than `heartbeat_unhealthy_after`
intervals and OFFLINE after `heartbeat_offline_after`; the event consumer brings it back to
ONLINE when heartbeats resume. DRAINING and MAINTENANCE are admin decisions and never
touched here. A node that never sent a heartbeat is judged from its creation time.

Run under a lease (`panel.leases`) so one replica sweeps; each update is conditional on the
row still being as it was read, so a second sweeper would change nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node
from stellarstack.panel.domain.events.fanout import publish_node_status
from stellarstack.settings import PanelSettings

__all__ = ["SWEPT_STATUSES", "HealthThresholds", "NodeTransition", "sweep_node_health"]

SWEPT_STATUSES = (NodeStatus.ONLINE, NodeStatus.STARTING, NodeStatus.UNHEALTHY)
"""Statuses the sweep may change; the others are set by admins or are already OFFLINE."""


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """How old a last heartbeat may be before a node is unhealthy, then offline."""

    unhealthy_after: timedelta
    offline_after: timedelta

    @classmethod
    def from_settings(cls, settings: PanelSettings) -> HealthThresholds:
        """Interval times missed-heartbeat counts from the panel's settings."""
        interval = settings.heartbeat_interval
        offline = max(settings.heartbeat_offline_after, settings.heartbeat_unhealthy_after)
        return cls(
            unhealthy_after=timedelta(seconds=interval * settings.heartbeat_unhealthy_after),
            offline_after=timedelta(seconds=interval * offline),
        )

    def status_for(self, silent_for: timedelta) -> NodeStatus | None:
        """The status a node silent for this long should have, or None while it is fine."""
        if silent_for >= self.offline_after:
            return NodeStatus.OFFLINE
        if silent_for >= self.unhealthy_after:
            return NodeStatus.UNHEALTHY
        return None


@dataclass(frozen=True, slots=True)
class NodeTransition:
    """One node the sweep moved."""

    node_id: uuid.UUID
    previous: NodeStatus
    status: NodeStatus


async def sweep_node_health(
    db: AsyncSession,
    broker: Broker,
    thresholds: HealthThresholds,
    *,
    at: datetime | None = None,
) -> list[NodeTransition]:
    """Mark silent nodes UNHEALTHY / OFFLINE, commit, and announce each change."""
    now = at or datetime.now(UTC)
    last_sign = sa.func.coalesce(Node.last_heartbeat_at, Node.created_at)
    rows = (
        await db.execute(
            sa.select(Node.id, Node.status, Node.last_heartbeat_at, Node.created_at).where(
                Node.status.in_(SWEPT_STATUSES), last_sign < now - thresholds.unhealthy_after
            )
        )
    ).all()
    moved: list[NodeTransition] = []
    for node_id, status, last_heartbeat_at, created_at in rows:
        target = thresholds.status_for(now - (last_heartbeat_at or created_at))
        if target is None or target == status:
            continue
        # Only if nothing changed since the read (a heartbeat, an admin, another sweeper).
        updated = await db.execute(
            sa.update(Node)
            .where(
                Node.id == node_id,
                Node.status == status,
                Node.last_heartbeat_at.is_(None)
                if last_heartbeat_at is None
                else Node.last_heartbeat_at == last_heartbeat_at,
            )
            .values(status=target)
            .execution_options(synchronize_session=False)
        )
        if updated.rowcount:  # type: ignore[attr-defined]
            moved.append(NodeTransition(node_id, status, target))
    await db.commit()
    for change in moved:
        await publish_node_status(
            broker, str(change.node_id), change.status, change.previous, "missed heartbeats"
        )
    return moved
