"""Who is calling: a `Principal` from the session cookie or an `Authorization: Bearer` key.

API keys authenticate `/api/` requests only; pages are for browsers and their cookie. A
request that sends an `Authorization` header is judged by it alone: a bad key is a 401 even
when a valid cookie rides along, so a script never acts with a browser's rights by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from stellarstack.panel.auth import api_keys
from stellarstack.panel.auth.sessions import SESSION_COOKIE, resolve_session
from stellarstack.panel.db.enums import ActorType
from stellarstack.panel.db.models import ApiKey, Session, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.audit.service import Actor
from stellarstack.panel.errors import Unauthorized

__all__ = ["AuthMethod", "Principal", "resolve_principal"]

AuthMethod = Literal["session", "api_key"]
API_PATH_PREFIX = "/api/"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the user, and how they proved it."""

    user: User
    method: AuthMethod
    session: Session | None = None
    api_key: ApiKey | None = None
    ip: str | None = None

    @property
    def key_permissions(self) -> frozenset[str] | None:
        """The key's permission subset, or None when no key narrows this request."""
        return frozenset(self.api_key.permissions) if self.api_key is not None else None

    @property
    def actor(self) -> Actor:
        """This caller as an audit actor (the key itself when one was used)."""
        if self.api_key is not None:
            return Actor(ActorType.API_KEY, str(self.api_key.id), self.user.id, self.ip)
        return Actor(ActorType.USER, str(self.user.id), self.user.id, self.ip)


def _bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send the API key as `Authorization: Bearer strk_…`.")
    return token


async def resolve_principal(
    request: Request, db: AsyncSession, *, ip: str | None, database: Database | None = None
) -> Principal | None:
    """The caller of this request, None when anonymous; 401 for a bad or revoked key.

    With `database`, a key's `last_used_at` is refreshed (at most once a minute).
    """
    # Every field is written on every request: some ASGI harnesses share one state dict
    # between requests, and a stale key id must never make a session look like a key.
    state = request.state
    state.api_key_id, state.session, state.auth_method = None, None, None
    header = request.headers.get("authorization")
    if header is not None and request.url.path.startswith(API_PATH_PREFIX):
        now = datetime.now(UTC)
        key, user = await api_keys.authenticate(db, _bearer_token(header), ip=ip, now=now)
        if database is not None and api_keys.needs_touch(key, now):
            await api_keys.touch(database, key, ip=ip, now=now)
        state.api_key_id, state.auth_method = key.id, "api_key"
        return Principal(user, "api_key", api_key=key, ip=ip)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    resolved = await resolve_session(db, token)
    if resolved is None:
        return None
    session, user = resolved
    state.session, state.auth_method = session, "session"
    return Principal(user, "session", session=session, ip=ip)
