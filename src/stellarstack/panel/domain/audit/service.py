"""Recording audit entries; every sensitive action calls `record` in its own transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.db.models import AuditLog
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import PanelError

__all__ = ["AUDITED_REFUSALS", "Actor", "audit_failures", "record", "record_detached"]

# Refusals worth a failure entry: someone tried something they may not do, or that would break
# an invariant (the last super admin). Typos (422) and unknown ids (404) are not recorded.
AUDITED_REFUSALS = frozenset({401, 403, 409})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user, an API key (on behalf of its user), a node daemon, or the system."""

    type: ActorType
    id: str
    user_id: uuid.UUID | None = None
    ip: str | None = None

    @classmethod
    def system(cls, name: str) -> Actor:
        """The panel itself (a schedule, a sweep)."""
        return cls(ActorType.SYSTEM, name)


async def record(
    db: AsyncSession,
    actor: Actor,
    action: str,
    resource: str,
    resource_id: str | uuid.UUID | None = None,
    *,
    status: AuditStatus = AuditStatus.SUCCESS,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit entry to the session (committed with the caller's transaction)."""
    entry = AuditLog(
        user_id=actor.user_id,
        actor_type=actor.type,
        actor_id=actor.id[:64],
        actor_ip=actor.ip,
        action=action,
        resource=resource,
        resource_id=str(resource_id)[:64] if resource_id is not None else None,
        status=status,
        error=error[:2000] if error else None,
        details=details,
    )
    db.add(entry)
    return entry


async def record_detached(
    database: Database,
    actor: Actor,
    action: str,
    resource: str,
    resource_id: str | uuid.UUID | None = None,
    *,
    status: AuditStatus = AuditStatus.FAILURE,
    error: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record in a transaction of its own: for failures whose request transaction rolls back."""
    async with database.sessionmaker() as db:
        await record(
            db, actor, action, resource, resource_id, status=status, error=error, details=details
        )
        await db.commit()


@asynccontextmanager
async def audit_failures(
    database: Database,
    actor: Actor,
    action: str,
    resource: str,
    resource_id: str | uuid.UUID | None = None,
    *,
    session: AsyncSession | None = None,
) -> AsyncIterator[None]:
    """Record a refused action (403, 409…) that rolls the request back, then re-raise it.

    Pass the request's `session`: it is rolled back first, so no row lock it holds can
    block the entry written on a connection of its own.
    """
    try:
        yield
    except PanelError as exc:
        if exc.status in AUDITED_REFUSALS:
            if session is not None:
                await session.rollback()
            await record_detached(
                database,
                actor,
                action,
                resource,
                resource_id,
                error=exc.detail or type(exc).__name__,
            )
        raise
