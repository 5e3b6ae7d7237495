"""Server-side sessions: an opaque cookie token whose SHA-256 is stored in the database."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from stellarstack.panel.db.models import Session, User

__all__ = [
    "SESSION_COOKIE",
    "SESSION_LIFETIME",
    "clear_session_cookie",
    "create_session",
    "hash_token",
    "list_sessions",
    "resolve_session",
    "revoke_other_sessions",
    "revoke_session",
    "revoke_session_by_id",
    "set_session_cookie",
]

SESSION_COOKIE = "stellar_session"
SESSION_LIFETIME = timedelta(days=7)
REFRESH_AFTER = timedelta(days=1)

# Built once: the lookup runs on every signed-in request, and building the statement (not
# running it) was a tenth of that request's time.
_SESSION_BY_TOKEN = (
    select(Session, User)
    .join(User, User.id == Session.user_id)
    .where(Session.token_hash == bindparam("token_hash"))
)


def hash_token(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def create_session(
    db: AsyncSession, user: User, *, ip: str | None, user_agent: str | None
) -> str:
    """Open a session for a user and return the cookie token (shown only here)."""
    token = secrets.token_urlsafe(32)
    now = _now()
    # Forget this user's expired sessions, so the table does not grow without bound.
    await db.execute(delete(Session).where(Session.user_id == user.id, Session.expires_at <= now))
    db.add(
        Session(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=now + SESSION_LIFETIME,
            last_seen_at=now,
            ip_address=ip,
            user_agent=(user_agent or "")[:512] or None,
        )
    )
    await db.flush()
    return token


async def resolve_session(db: AsyncSession, token: str) -> tuple[Session, User] | None:
    """The live session and user behind a cookie token; sliding expiry refreshed daily."""
    if not token or len(token) > 256:
        return None
    row = (await db.execute(_SESSION_BY_TOKEN, {"token_hash": hash_token(token)})).first()
    if row is None:
        return None
    session, user = row
    now = _now()
    if _aware(session.expires_at) <= now or user.suspended:
        return None
    if session.last_seen_at is None or now - _aware(session.last_seen_at) > REFRESH_AFTER:
        session.last_seen_at = now
        session.expires_at = now + SESSION_LIFETIME
    return session, user


async def revoke_session(db: AsyncSession, token: str) -> None:
    """End the session behind a token (sign-out)."""
    await db.execute(delete(Session).where(Session.token_hash == hash_token(token)))


async def list_sessions(db: AsyncSession, user_id: uuid.UUID) -> list[Session]:
    """A user's live sessions, most recently used first."""
    rows = await db.execute(
        select(Session)
        .where(Session.user_id == user_id, Session.expires_at > _now())
        .order_by(Session.last_seen_at.desc(), Session.created_at.desc())
    )
    return list(rows.scalars())


async def revoke_session_by_id(db: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    """End one of a user's sessions; False when the user has no session with that id."""
    result = await db.execute(
        delete(Session).where(Session.id == session_id, Session.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def revoke_other_sessions(
    db: AsyncSession, user_id: uuid.UUID, keep: uuid.UUID | None = None
) -> int:
    """End every session of a user except `keep`; return how many ended."""
    query = delete(Session).where(Session.user_id == user_id)
    if keep is not None:
        query = query.where(Session.id != keep)
    result = await db.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Attach the session cookie: HTTP-only, SameSite=Lax, 7 days."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(SESSION_COOKIE, path="/")
