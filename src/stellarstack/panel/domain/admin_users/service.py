"""User management for staff: search, create, change roles, suspend; with the role rules.

- Only a SUPER_ADMIN grants ADMIN or SUPER_ADMIN, and only they act on accounts at or above
  their own rank; everyone else manages accounts strictly below theirs.
- Nobody demotes or suspends the last active SUPER_ADMIN; nobody suspends themselves.
- Suspension ends every session and revokes every API key in the same transaction, and the
  session and key checks refuse suspended accounts, so nothing in flight survives it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth.api_keys import revoke_user_keys
from stellarstack.panel.auth.permissions import outranks
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.auth.service import create_user, find_user_by_email, normalize_email
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import ApiKey, Server, Session, User
from stellarstack.panel.deps import PageRequest
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "UserChanges",
    "UserCounts",
    "UserFilter",
    "check_role_grant",
    "create_account",
    "get_user",
    "list_users",
    "suspend_user",
    "unsuspend_user",
    "update_user",
    "user_counts",
]

log = get_logger(__name__)

ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
MAX_SEARCH = 100


@dataclass(frozen=True, slots=True)
class UserFilter:
    """What the admin list is narrowed to."""

    search: str | None = None
    role: Role | None = None
    suspended: bool | None = None


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Fields to change on a user; None leaves a field alone (quotas: see `quotas`)."""

    name: str | None = None
    role: Role | None = None
    quotas: dict[str, int | None] | None = None


@dataclass(frozen=True, slots=True)
class UserCounts:
    """What hangs off an account."""

    servers: int
    api_keys: int
    sessions: int


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filtered(query: Select[Any], filters: UserFilter) -> Select[Any]:
    if filters.search:
        pattern = f"%{_escape_like(filters.search.strip().lower()[:MAX_SEARCH])}%"
        query = query.where(
            or_(
                func.lower(User.email).like(pattern, escape="\\"),
                func.lower(func.coalesce(User.name, "")).like(pattern, escape="\\"),
            )
        )
    if filters.role is not None:
        query = query.where(User.role == filters.role)
    if filters.suspended is not None:
        query = query.where(User.suspended.is_(filters.suspended))
    return query


async def list_users(
    db: AsyncSession, filters: UserFilter, page: PageRequest
) -> tuple[list[User], int]:
    """One page of users matching the filter, oldest first, and the total count."""
    total = await db.scalar(_filtered(select(func.count()).select_from(User), filters))
    rows = await db.execute(
        _filtered(select(User), filters)
        .order_by(User.created_at, User.id)
        .offset(page.offset)
        .limit(page.per_page)
    )
    return list(rows.scalars()), int(total or 0)


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User:
    """A user by id; 404 when there is none."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("There is no user with this id.")
    return user


async def user_counts(db: AsyncSession, user: User) -> UserCounts:
    """How many servers, live API keys and sessions a user has."""

    async def count(model: type[Any], *conditions: Any) -> int:
        value = await db.scalar(select(func.count()).select_from(model).where(*conditions))
        return int(value or 0)

    return UserCounts(
        servers=await count(Server, Server.owner_id == user.id),
        api_keys=await count(ApiKey, ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None)),
        sessions=await count(Session, Session.user_id == user.id),
    )


def check_role_grant(actor: User, role: Role) -> None:
    """Refuse to grant a role the actor may not hand out."""
    if role in ADMIN_ROLES and actor.role != Role.SUPER_ADMIN:
        raise Forbidden("Only a super admin can grant the admin or super admin role.")
    if actor.role != Role.SUPER_ADMIN and not outranks(actor.role, role):
        raise Forbidden("You can only grant roles below your own.")


def _check_manages(actor: User, target: User) -> None:
    if actor.role != Role.SUPER_ADMIN and not outranks(actor.role, target.role):
        raise Forbidden("You can only manage accounts whose role is below your own.")


async def _active_super_admins(db: AsyncSession) -> int:
    # Row locks (PostgreSQL) so two admins demoting the last two super admins at the same
    # moment cannot both see "one left"; SQLite serialises writers anyway.
    rows = await db.execute(
        select(User.id)
        .where(User.role == Role.SUPER_ADMIN, User.suspended.is_(False))
        # NO KEY UPDATE: audit inserts that reference these users (KEY SHARE) are not blocked.
        .with_for_update(key_share=True)
    )
    return len(rows.all())


async def _check_not_last_super_admin(db: AsyncSession, target: User) -> None:
    is_active_super_admin = target.role == Role.SUPER_ADMIN and not target.suspended
    if is_active_super_admin and await _active_super_admins(db) <= 1:
        raise Conflict(
            "This is the last active super admin. Make another account super admin first."
        )


async def create_account(
    db: AsyncSession,
    principal: Principal,
    *,
    email: str,
    password: str,
    name: str | None,
    role: Role,
) -> User:
    """Create an account on behalf of an admin (email verified: the admin vouches for it)."""
    check_role_grant(principal.user, role)
    address = normalize_email(email)
    if "@" not in address.strip("@") or any(ch.isspace() for ch in address):
        raise ValidationFailed([FieldError("email", "Enter an email address like a@example.com.")])
    if await find_user_by_email(db, address) is not None:
        raise Conflict("An account with this email already exists.")
    user = await create_user(db, address, password, name=(name or "").strip() or None, role=role)
    user.email_verified = True
    await record(
        db,
        principal.actor,
        "user.create",
        "user",
        user.id,
        details={"email": address, "role": role},
    )
    log.info("admin.user_created", user_id=str(user.id), by=str(principal.user.id))
    return user


async def update_user(
    db: AsyncSession, principal: Principal, target: User, changes: UserChanges
) -> User:
    """Change a user's name, quotas or role under the role rules."""
    actor = principal.user
    if changes.role is not None and changes.role != target.role:
        if target.id != actor.id:
            _check_manages(actor, target)
        check_role_grant(actor, changes.role)
        await _check_not_last_super_admin(db, target)
        previous = target.role
        target.role = changes.role
        await record(
            db,
            principal.actor,
            "user.role_change",
            "user",
            target.id,
            details={"from": previous.value, "to": changes.role.value},
        )
    edited: dict[str, Any] = {}
    if changes.name is not None:
        if target.id != actor.id:
            _check_manages(actor, target)
        target.name = changes.name.strip() or None
        edited["name"] = target.name
    for field, value in (changes.quotas or {}).items():
        setattr(target, field, value)
        edited[field] = value
    if edited:
        await record(db, principal.actor, "user.update", "user", target.id, details=edited)
    return target


async def suspend_user(
    db: AsyncSession, principal: Principal, target: User, reason: str
) -> UserCounts:
    """Suspend an account: end its sessions and revoke its keys at once."""
    if target.id == principal.user.id:
        raise Conflict("You cannot suspend your own account.")
    _check_manages(principal.user, target)
    if target.suspended:
        raise Conflict("This account is already suspended.")
    await _check_not_last_super_admin(db, target)
    now = datetime.now(UTC)
    target.suspended, target.suspended_at = True, now
    target.suspend_reason = reason.strip()
    sessions = await db.execute(delete(Session).where(Session.user_id == target.id))
    keys = await revoke_user_keys(db, target.id, now=now)
    ended = UserCounts(0, keys, int(getattr(sessions, "rowcount", 0) or 0))
    await record(
        db,
        principal.actor,
        "user.suspend",
        "user",
        target.id,
        details={"reason": target.suspend_reason, "sessions": ended.sessions, "apiKeys": keys},
    )
    log.info("admin.user_suspended", user_id=str(target.id), sessions=ended.sessions, keys=keys)
    return ended


async def unsuspend_user(db: AsyncSession, principal: Principal, target: User) -> User:
    """Lift a suspension (revoked keys stay revoked; the user signs in again)."""
    _check_manages(principal.user, target)
    if not target.suspended:
        raise Conflict("This account is not suspended.")
    target.suspended, target.suspended_at, target.suspend_reason = False, None, None
    await record(db, principal.actor, "user.unsuspend", "user", target.id)
    return target
