"""Platform statistics for the admin overview: counts of users, servers, nodes and keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.models import ApiKey, Node, Server, User
from stellarstack.panel.domain.admin_users.schemas import PlatformStats

__all__ = ["platform_stats"]


async def _grouped(db: AsyncSession, column: Any) -> dict[str, int]:
    rows = await db.execute(select(column, func.count()).group_by(column))
    return {str(getattr(key, "value", key)): int(count) for key, count in rows.all()}


async def platform_stats(db: AsyncSession) -> PlatformStats:
    """Counts across the whole panel."""
    now = datetime.now(UTC)
    by_role = await _grouped(db, User.role)
    by_status = await _grouped(db, Node.status)
    suspended = await db.scalar(select(func.count()).select_from(User).where(User.suspended))
    servers = await db.scalar(select(func.count()).select_from(Server))
    keys = await db.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    return PlatformStats(
        users=sum(by_role.values()),
        suspended_users=int(suspended or 0),
        users_by_role=by_role,
        servers=int(servers or 0),
        nodes=sum(by_status.values()),
        nodes_by_status=by_status,
        active_api_keys=int(keys or 0),
    )
