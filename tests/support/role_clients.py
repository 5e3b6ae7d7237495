"""A running panel app with three callers: an admin, a plain user and an anonymous visitor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings

__all__ = ["CSRF", "CSRF_HEADERS", "role_clients"]

# The double-submit CSRF pair a browser of the panel would send with its session cookie.
CSRF = "role-clients-test-csrf-token"
CSRF_HEADERS = {"X-CSRF-Token": CSRF}


async def _session_cookie(database: Database, email: str, role: Role) -> dict[str, str]:
    async with database.sessionmaker() as db:
        user = await create_user(db, email, "correct horse battery", role=role)
        token = await create_session(db, user, ip=None, user_agent=None)
        await db.commit()
    return {SESSION_COOKIE: token, "stellar_csrf": CSRF}


@asynccontextmanager
async def role_clients(
    database: Database, settings: PanelSettings, domain: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]]:
    """Serve the app over ASGI; yield (admin, player, anonymous) clients (users @`domain`)."""
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    admin = await _session_cookie(database, f"admin@{domain}", Role.ADMIN)
    player = await _session_cookie(database, f"player@{domain}", Role.USER)
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            url = "http://testserver"
            async with (
                httpx.AsyncClient(
                    transport=transport, base_url=url, cookies=admin, headers=CSRF_HEADERS
                ) as a,
                httpx.AsyncClient(
                    transport=transport, base_url=url, cookies=player, headers=CSRF_HEADERS
                ) as p,
                httpx.AsyncClient(transport=transport, base_url=url) as anon,
            ):
                yield a, p, anon
    finally:
        await broker.close()
