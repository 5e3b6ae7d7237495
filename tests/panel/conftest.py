"""Panel fixtures: a migrated database and an app client over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.support.csrf import speak_csrf


@pytest.fixture
async def panel_database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each engine (SQLite file, fresh PostgreSQL database)."""
    await migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def panel_settings(tmp_path: Path) -> PanelSettings:
    """Settings pointing at a temporary data directory."""
    return PanelSettings(data_dir=tmp_path, max_body_bytes=64 * 1024)


@pytest.fixture
async def client(
    panel_settings: PanelSettings, panel_database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a full panel app (lifespan run) over ASGI."""
    broker = MemoryBroker()
    app = create_app(panel_settings, database=panel_database, broker=broker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield speak_csrf(c)
    await broker.close()
