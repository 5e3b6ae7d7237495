"""Dependency aliases so routes stay a few lines long (`DbSession`, `CurrentUser`, …)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.panel.auth.sessions import SESSION_COOKIE, resolve_session
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import Unauthorized
from stellarstack.settings import PanelSettings

__all__ = [
    "BrokerDep",
    "CurrentUser",
    "DbSession",
    "OptionalUser",
    "SettingsDep",
    "client_ip",
]


def get_settings(request: Request) -> PanelSettings:
    """The panel's settings."""
    settings: PanelSettings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    """The panel's database handle."""
    database: Database = request.app.state.database
    return database


def get_broker(request: Request) -> Broker:
    """The panel's broker (Redis, or in-process on the embedded default)."""
    broker: Broker = request.app.state.broker
    return broker


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    async with get_database(request).sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SettingsDep = Annotated[PanelSettings, Depends(get_settings)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
# scope="function": commit before the response is sent, so the next request sees the writes.
DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]


def client_ip(request: Request) -> str | None:
    """The caller's address (X-Forwarded-For is trusted only from configured proxies)."""
    peer = request.client.host if request.client else None
    settings = get_settings(request)
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer and peer in settings.trusted_proxies:
        return forwarded.split(",")[0].strip() or peer
    return peer


async def get_optional_user(request: Request, db: DbSession) -> User | None:
    """The signed-in user, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    resolved = await resolve_session(db, token)
    if resolved is None:
        return None
    session, user = resolved
    request.state.session = session
    request.state.user = user
    return user


async def get_current_user(user: Annotated[User | None, Depends(get_optional_user)]) -> User:
    """The signed-in user; 401 when there is none."""
    if user is None:
        raise Unauthorized("Sign in to continue.")
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
