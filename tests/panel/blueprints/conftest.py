"""Blueprint API fixtures: a panel with the catalogue installed, an admin and a player."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.importing import install_catalog
from stellarstack.settings import PanelSettings
from tests.support.role_clients import role_clients


@dataclass
class BlueprintPanel:
    """A running panel app with the shipped catalogue, and clients for each kind of caller."""

    admin: httpx.AsyncClient
    player: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    database: Database
    settings: PanelSettings


async def _panel(database: Database, settings: PanelSettings) -> AsyncIterator[BlueprintPanel]:
    await install_catalog(database, settings)
    async with role_clients(database, settings, "blueprints.test") as (admin, player, anonymous):
        yield BlueprintPanel(admin, player, anonymous, database, settings)


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
