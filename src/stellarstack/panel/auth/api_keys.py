"""API key credentials: `strk_…` tokens, shown once, stored as SHA-256, checked per request.

A key is 32 random bytes (256 bits), so a plain SHA-256 is a safe stored form: there is
nothing to brute-force. Only the hash and a short display prefix (`strk_AbCdEfG`) are kept.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from stellarstack.panel.db.models import ApiKey, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import Forbidden, Unauthorized

__all__ = [
    "KEY_PREFIX",
    "LAST_USED_RESOLUTION",
    "IssuedKey",
    "authenticate",
    "hash_key",
    "ip_allowed",
    "issue_key",
    "needs_touch",
    "revoke_user_keys",
    "touch",
]

KEY_PREFIX = "strk_"
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 7
# Longest token we bother hashing: anything longer is not one of ours.
MAX_TOKEN_LENGTH = 128
# last_used_at is written at most this often, so a busy key costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

INVALID_KEY = "This API key is not valid."

# Built once: the lookup runs on every request made with a key.
_KEY_BY_HASH = (
    select(ApiKey, User)
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly generated key: the token (shown once), its display prefix and stored hash."""

    token: str
    prefix: str
    key_hash: str


def hash_key(token: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_key() -> IssuedKey:
    """Generate a new `strk_…` token."""
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    return IssuedKey(token, token[:DISPLAY_PREFIX_LENGTH], hash_key(token))


def ip_allowed(allowed: list[str], ip: str | None) -> bool:
    """Whether an address matches a key's allow-list (empty list: any address)."""
    if not allowed:
        return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def authenticate(
    db: AsyncSession, token: str, *, ip: str | None, now: datetime | None = None
) -> tuple[ApiKey, User]:
    """The live key and its user behind a bearer token; 401 for anything else."""
    if not token.startswith(KEY_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized(INVALID_KEY)
    row = (await db.execute(_KEY_BY_HASH, {"key_hash": hash_key(token)})).first()
    if row is None:
        raise Unauthorized(INVALID_KEY)
    key, user = row
    now = now or datetime.now(UTC)
    if key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.")
    if key.expires_at is not None and _aware(key.expires_at) <= now:
        raise Unauthorized("This API key has expired.")
    if user.suspended:
        raise Unauthorized("The account that owns this API key is suspended.")
    if not ip_allowed(key.allowed_ips, ip):
        raise Forbidden("This API key may not be used from your address.")
    return key, user


def needs_touch(key: ApiKey, now: datetime) -> bool:
    """Whether `last_used_at` is stale enough to be written again."""
    return key.last_used_at is None or now - _aware(key.last_used_at) >= LAST_USED_RESOLUTION


async def touch(database: Database, key: ApiKey, *, ip: str | None, now: datetime) -> None:
    """Record a key's use in a transaction of its own.

    Not in the request's transaction: on SQLite that would hold the write lock for the whole
    request and stall anything written on another connection (detached audit entries).
    """
    async with database.sessionmaker() as db:
        await db.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now, last_used_ip=ip)
        )
        await db.commit()
    # Committed values: the request's session must not see the key as changed and write it.
    set_committed_value(key, "last_used_at", now)
    set_committed_value(key, "last_used_ip", ip)


async def revoke_user_keys(db: AsyncSession, user_id: uuid.UUID, *, now: datetime) -> int:
    """Revoke every live key of a user (suspension); return how many were revoked."""
    result = await db.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)
