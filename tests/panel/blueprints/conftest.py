"""Blueprint API fixtures: a panel with the catalogue installed, an admin and a player."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.importing import install_catalog
from stellarstack.settings import PanelSettings

CSRF = "blueprints-test-csrf-token"
CSRF_HEADERS = {"X-CSRF-Token": CSRF}


@dataclass
class BlueprintPanel:
    """A running panel app with the shipped catalogue, and clients for each kind of caller."""

    admin: httpx.AsyncClient
    player: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    database: Database
    settings: PanelSettings


async def _session_cookie(database: Database, email: str, role: Role) -> dict[str, str]:
    async with database.sessionmaker() as db:
        user = await create_user(db, email, "correct horse battery", role=role)
        token = await create_session(db, user, ip=None, user_agent=None)
        await db.commit()
    return {SESSION_COOKIE: token, "stellar_csrf": CSRF}


async def _panel(database: Database, settings: PanelSettings) -> AsyncIterator[BlueprintPanel]:
    await install_catalog(database, settings)
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    admin = await _session_cookie(database, "admin@blueprints.test", Role.ADMIN)
    player = await _session_cookie(database, "player@blueprints.test", Role.USER)
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
            yield BlueprintPanel(a, p, anon, database, settings)
    await broker.close()


def _settings(directory: Path) -> PanelSettings:
    return PanelSettings(
        data_dir=directory,
        max_body_bytes=256 * 1024,
        blueprint_sync_allow_http=True,
        blueprint_sync_allow_private=False,
    )


@pytest.fixture(scope="module")
async def sqlite_panel(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BlueprintPanel]:
    """One migrated SQLite panel shared by a module's tests."""
    directory = tmp_path_factory.mktemp("blueprints-panel")
    url = f"sqlite+aiosqlite:///{directory / 'panel.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    async for panel in _panel(database, _settings(directory)):
        yield panel
    await database.dispose()


@pytest.fixture
async def engine_panel(database_url: str, tmp_path: Path) -> AsyncIterator[BlueprintPanel]:
    """A fresh panel on each engine (SQLite and PostgreSQL)."""
    await migrate.upgrade(database_url)
    database = Database(database_url)
    async for panel in _panel(database, _settings(tmp_path)):
        yield panel
    await database.dispose()
