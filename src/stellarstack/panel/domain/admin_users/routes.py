"""`/api/v1/admin/users` (user management) and `/api/v1/admin/stats` (platform counts)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from stellarstack.panel.auth.permissions import require_permission
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.panel.deps import DbSession, PageQuery, get_database
from stellarstack.panel.domain.admin_users import service
from stellarstack.panel.domain.admin_users.schemas import (
    AdminUserOut,
    PlatformStats,
    SuspendBody,
    UserCreate,
    UserDetail,
    UserUpdate,
)
from stellarstack.panel.domain.admin_users.stats import platform_stats
from stellarstack.panel.domain.audit.service import audit_failures
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])

Viewer = Annotated[Principal, Depends(require_permission("user.view"))]
Creator = Annotated[Principal, Depends(require_permission("user.create"))]
Editor = Annotated[Principal, Depends(require_permission("user.update"))]
Suspender = Annotated[Principal, Depends(require_permission("user.suspend"))]
StatsViewer = Annotated[Principal, Depends(require_permission("platform.stats"))]
DatabaseDep = Annotated[Database, Depends(get_database)]


async def _detail(db: DbSession, user: User) -> UserDetail:
    counts = await service.user_counts(db, user)
    row = AdminUserOut.model_validate(user).model_dump()
    return UserDetail(
        **row,
        max_servers=user.max_servers,
        max_memory_mb=user.max_memory_mb,
        max_cpu=user.max_cpu,
        max_disk_mb=user.max_disk_mb,
        server_count=counts.servers,
        api_key_count=counts.api_keys,
        session_count=counts.sessions,
    )


@router.get("/stats", response_model=Envelope[PlatformStats])
async def get_stats(_: StatsViewer, db: DbSession) -> Envelope[PlatformStats]:
    """Platform statistics."""
    return ok(await platform_stats(db))


@router.get("/users", response_model=Envelope[list[AdminUserOut]])
async def list_users(
    _: Viewer,
    db: DbSession,
    page: PageQuery,
    search: Annotated[str | None, Query(max_length=100)] = None,
    role: Role | None = None,
    suspended: bool | None = None,
) -> Envelope[list[AdminUserOut]]:
    """List and search users (by email or name)."""
    users, total = await service.list_users(db, service.UserFilter(search, role, suspended), page)
    return ok([AdminUserOut.model_validate(u) for u in users], meta=page.meta(total))


@router.post("/users", status_code=201, response_model=Envelope[UserDetail])
async def create_user(
    body: UserCreate, principal: Creator, db: DbSession, database: DatabaseDep
) -> Envelope[UserDetail]:
    """Create an account."""
    async with audit_failures(database, principal.actor, "user.create", "user", session=db):
        user = await service.create_account(
            db,
            principal,
            email=body.email,
            password=body.password,
            name=body.name,
            role=body.role,
        )
    return ok(await _detail(db, user))


@router.get("/users/{user_id}", response_model=Envelope[UserDetail])
async def get_user(user_id: uuid.UUID, _: Viewer, db: DbSession) -> Envelope[UserDetail]:
    """One user, with counts of their servers, keys and sessions."""
    return ok(await _detail(db, await service.get_user(db, user_id)))


@router.patch("/users/{user_id}", response_model=Envelope[UserDetail])
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    principal: Editor,
    db: DbSession,
    database: DatabaseDep,
) -> Envelope[UserDetail]:
    """Change a user's name, quotas or role."""
    target = await service.get_user(db, user_id)
    quota_fields = {"max_servers", "max_memory_mb", "max_cpu", "max_disk_mb"}
    quotas = {f: getattr(body, f) for f in quota_fields & body.model_fields_set}
    changes = service.UserChanges(body.name, body.role, quotas)
    async with audit_failures(
        database, principal.actor, "user.update", "user", user_id, session=db
    ):
        await service.update_user(db, principal, target, changes)
    return ok(await _detail(db, target))


@router.post("/users/{user_id}/suspend", response_model=Envelope[UserDetail])
async def suspend_user(
    user_id: uuid.UUID,
    body: SuspendBody,
    principal: Suspender,
    db: DbSession,
    database: DatabaseDep,
) -> Envelope[UserDetail]:
    """Suspend a user: their sessions end and their API keys are revoked at once."""
    target = await service.get_user(db, user_id)
    async with audit_failures(
        database, principal.actor, "user.suspend", "user", user_id, session=db
    ):
        await service.suspend_user(db, principal, target, body.reason)
    return ok(await _detail(db, target))


@router.post("/users/{user_id}/unsuspend", response_model=Envelope[UserDetail])
async def unsuspend_user(
    user_id: uuid.UUID, principal: Suspender, db: DbSession, database: DatabaseDep
) -> Envelope[UserDetail]:
    """Lift a user's suspension."""
    target = await service.get_user(db, user_id)
    async with audit_failures(
        database, principal.actor, "user.unsuspend", "user", user_id, session=db
    ):
        await service.unsuspend_user(db, principal, target)
    return ok(await _detail(db, target))
