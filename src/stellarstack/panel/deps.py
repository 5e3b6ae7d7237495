"""Dependency aliases so routes stay a few lines long (`DbSession`, `CurrentUser`, …).

Who is calling comes from the session cookie or an `Authorization: Bearer strk_…` API key:

- `CurrentPrincipal` / `CurrentUser`: either; client keys only (application keys are for the
  admin API, which guards itself with `auth.permissions.require_permission`);
- `AnyPrincipal`: either, any kind of key (what `require_permission` builds on);
- `SessionPrincipal` / `SessionUser`: a browser session only, for managing credentials
  (API keys, password, 2FA);
- `OptionalUser`: the user or None, never an error for a missing sign-in.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.panel.auth.principal import Principal, resolve_principal
from stellarstack.panel.db.enums import ApiKeyKind
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import Forbidden, Unauthorized
from stellarstack.settings import PanelSettings

__all__ = [
    "AnyPrincipal",
    "BrokerDep",
    "CurrentPrincipal",
    "CurrentUser",
    "DbSession",
    "OptionalPrincipal",
    "OptionalUser",
    "PageQuery",
    "PageRequest",
    "SessionPrincipal",
    "SessionUser",
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


async def get_optional_principal(request: Request, db: DbSession) -> Principal | None:
    """The caller (session or API key), or None when anonymous; 401 for a bad key."""
    principal = await resolve_principal(
        request, db, ip=client_ip(request), database=get_database(request)
    )
    request.state.user = principal.user if principal is not None else None
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_any_principal(principal: OptionalPrincipal) -> Principal:
    """The caller, authenticated by session or by any kind of API key; 401 when anonymous."""
    if principal is None:
        raise Unauthorized("Sign in or send an API key to continue.")
    return principal


AnyPrincipal = Annotated[Principal, Depends(get_any_principal)]


async def get_current_principal(principal: AnyPrincipal) -> Principal:
    """The caller on a user (client) route: a session or a client API key."""
    key = principal.api_key
    if key is not None and key.kind == ApiKeyKind.APPLICATION:
        raise Forbidden("Application API keys only work on the admin API (/api/v1/admin/...).")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


async def get_optional_user(principal: OptionalPrincipal) -> User | None:
    """The signed-in user, or None."""
    return principal.user if principal is not None else None


async def get_current_user(principal: CurrentPrincipal) -> User:
    """The signed-in user (session or client key); 401 when there is none."""
    return principal.user


async def get_session_principal(principal: AnyPrincipal) -> Principal:
    """The caller of a browser session; API keys are refused (they cannot manage credentials)."""
    if principal.method != "session":
        raise Forbidden("This needs a signed-in session; API keys cannot manage credentials.")
    return principal


SessionPrincipal = Annotated[Principal, Depends(get_session_principal)]


async def get_session_user(principal: SessionPrincipal) -> User:
    """The user of a browser session (see `get_session_principal`)."""
    return principal.user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
SessionUser = Annotated[User, Depends(get_session_user)]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page of a list the caller asked for (`?page=2&perPage=50`)."""

    page: int = 1
    per_page: int = 25

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.per_page

    def meta(self, total: int) -> dict[str, object]:
        """The `meta` of a list response (spec §14.2)."""
        pages = max(1, math.ceil(total / self.per_page))
        return {
            "pagination": {
                "page": self.page,
                "perPage": self.per_page,
                "total": total,
                "totalPages": pages,
            }
        }


def get_page_request(
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=100)] = 25,
) -> PageRequest:
    """The page and page size of a list request."""
    return PageRequest(page, per_page)


PageQuery = Annotated[PageRequest, Depends(get_page_request)]
