"""Creating, listing and revoking a user's API keys; a key never exceeds its user."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth import api_keys
from stellarstack.panel.auth.permissions import (
    ALL_PERMISSIONS,
    PLATFORM_PERMISSIONS,
    SERVER_PERMISSIONS,
    platform_permissions,
    unknown_permissions,
)
from stellarstack.panel.db.enums import ApiKeyKind
from stellarstack.panel.db.models import ApiKey, User
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "MAX_KEYS_PER_USER",
    "MAX_LIFETIME",
    "NewKey",
    "allowed_key_permissions",
    "create_key",
    "list_keys",
    "revoke_key",
]

log = get_logger(__name__)

MAX_KEYS_PER_USER = 25
MAX_LIFETIME = timedelta(days=366 * 2)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to create, already parsed from the request."""

    name: str
    kind: ApiKeyKind
    permissions: list[str]
    expires_at: datetime | None = None
    allowed_ips: tuple[str, ...] = ()


def allowed_key_permissions(user: User, kind: ApiKeyKind) -> frozenset[str]:
    """What a key of this kind may carry for this user (client: server permissions)."""
    if kind == ApiKeyKind.APPLICATION:
        return platform_permissions(user.role)
    return frozenset(SERVER_PERMISSIONS)


def _check_permissions(user: User, new: NewKey) -> list[str]:
    if new.kind == ApiKeyKind.APPLICATION and not platform_permissions(user.role):
        raise Forbidden("Only staff accounts can create application keys.")
    wanted = list(dict.fromkeys(new.permissions))
    unknown = unknown_permissions(wanted, ALL_PERMISSIONS)
    if unknown:
        raise ValidationFailed(
            [FieldError("permissions", f"Unknown permission: {', '.join(unknown[:5])}.")]
        )
    kind_catalogue = (
        PLATFORM_PERMISSIONS if new.kind == ApiKeyKind.APPLICATION else SERVER_PERMISSIONS
    )
    wrong_kind = unknown_permissions(wanted, kind_catalogue)
    if wrong_kind:
        hint = (
            "Application keys carry admin permissions; use a client key for server ones"
            if new.kind == ApiKeyKind.APPLICATION
            else "Client keys carry server permissions; use an application key for admin ones"
        )
        raise ValidationFailed([FieldError("permissions", f"{hint}: {', '.join(wrong_kind)}.")])
    beyond = unknown_permissions(wanted, allowed_key_permissions(user, new.kind))
    if beyond:
        raise ValidationFailed(
            [FieldError("permissions", f"A key cannot hold more than you: {', '.join(beyond)}.")]
        )
    return wanted


def _check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    aware = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    if aware <= now:
        raise ValidationFailed([FieldError("expiresAt", "The expiry must be in the future.")])
    if aware - now > MAX_LIFETIME:
        raise ValidationFailed([FieldError("expiresAt", "A key may live at most two years.")])
    return aware.astimezone(UTC)


def _check_ips(entries: tuple[str, ...]) -> list[str]:
    networks: list[str] = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValidationFailed(
                [FieldError("allowedIps", f"Not an IP address or CIDR range: {entry[:64]!r}.")]
            ) from None
    return networks


def _check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValidationFailed([FieldError("name", "Give the key a name.")])
    return cleaned


async def create_key(
    db: AsyncSession, user: User, new: NewKey, *, actor: Actor
) -> tuple[ApiKey, str]:
    """Create a key for `user`; return the row and the token (shown once)."""
    now = datetime.now(UTC)
    name = _check_name(new.name)
    permissions = _check_permissions(user, new)
    expires_at = _check_expiry(new.expires_at, now)
    allowed_ips = _check_ips(new.allowed_ips)
    live = await db.scalar(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
    )
    if (live or 0) >= MAX_KEYS_PER_USER:
        raise Conflict(f"You already have {MAX_KEYS_PER_USER} API keys; revoke one first.")
    issued = api_keys.issue_key()
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=issued.prefix,
        key_hash=issued.key_hash,
        kind=new.kind,
        permissions=permissions,
        allowed_ips=allowed_ips,
        expires_at=expires_at,
    )
    db.add(key)
    await db.flush()
    await record(
        db,
        actor,
        "api_key.create",
        "api_key",
        key.id,
        details={"name": name, "kind": new.kind.value, "permissions": permissions},
    )
    log.info("api_key.created", user_id=str(user.id), key_id=str(key.id), kind=new.kind.value)
    return key, issued.token


async def list_keys(db: AsyncSession, user: User) -> list[ApiKey]:
    """The user's live (unrevoked) keys, newest first."""
    result = await db.execute(
        select(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc())
    )
    return list(result.scalars())


async def revoke_key(db: AsyncSession, user: User, key_id: uuid.UUID, *, actor: Actor) -> ApiKey:
    """Revoke one of the user's keys; it stops working on the next request."""
    key = await db.get(ApiKey, key_id)
    if key is None or key.user_id != user.id or key.revoked_at is not None:
        raise NotFound("There is no API key with this id.")
    key.revoked_at = datetime.now(UTC)
    await record(db, actor, "api_key.revoke", "api_key", key.id, details={"name": key.name})
    log.info("api_key.revoked", user_id=str(user.id), key_id=str(key.id))
    return key
