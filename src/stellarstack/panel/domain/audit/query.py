"""Reading the audit log: filters, newest first, one page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.db.models import AuditLog, User
from stellarstack.panel.deps import PageRequest

__all__ = ["AuditFilter", "AuditRow", "list_entries"]

Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the audit list is narrowed to; `action` ending in `.*` matches a prefix."""

    actor_type: ActorType | None = None
    actor_id: str | None = None
    action: str | None = None
    resource: str | None = None
    resource_id: str | None = None
    status: AuditStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An entry and the email of the user behind it (if any is left)."""

    entry: AuditLog
    user_email: str | None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(query: Q, f: AuditFilter) -> Q:
    if f.actor_type is not None:
        query = query.where(AuditLog.actor_type == f.actor_type)
    if f.actor_id:
        query = query.where(AuditLog.actor_id == f.actor_id)
    if f.action:
        if f.action.endswith(".*"):
            prefix = _escape_like(f.action[:-1])
            query = query.where(AuditLog.action.like(f"{prefix}%", escape="\\"))
        else:
            query = query.where(AuditLog.action == f.action)
    if f.resource:
        query = query.where(AuditLog.resource == f.resource)
    if f.resource_id:
        query = query.where(AuditLog.resource_id == f.resource_id)
    if f.status is not None:
        query = query.where(AuditLog.status == f.status)
    if f.since is not None:
        query = query.where(AuditLog.created_at >= f.since)
    if f.until is not None:
        query = query.where(AuditLog.created_at < f.until)
    return query


async def list_entries(
    db: AsyncSession, filters: AuditFilter, page: PageRequest
) -> tuple[list[AuditRow], int]:
    """One page of matching entries, newest first, and the total count."""
    total = await db.scalar(_filtered(select(func.count()).select_from(AuditLog), filters))
    rows = await db.execute(
        _filtered(
            select(AuditLog, User.email).outerjoin(User, User.id == AuditLog.user_id), filters
        )
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
        .offset(page.offset)
        .limit(page.per_page)
    )
    return [AuditRow(entry, email) for entry, email in rows.all()], int(total or 0)
