"""Node fixtures: a panel app with an admin session, on SQLite once per module or per engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.support.role_clients import role_clients


@dataclass
class NodePanel:
    """A running panel app: an admin client, a plain user's client, its database, settings."""

    admin: httpx.AsyncClient
    player: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    database: Database
    settings: PanelSettings

    async def token(self, name: str, **extra: object) -> str:
        """A fresh registration token for a node called `name`."""
        response = await self.admin.post("/api/v1/admin/nodes/token", json={"name": name, **extra})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["registrationToken"])


async def _panel(database: Database, settings: PanelSettings) -> AsyncIterator[NodePanel]:
    async with role_clients(database, settings, "nodes.test") as (admin, player, anonymous):
        yield NodePanel(admin, player, anonymous, database, settings)


@pytest.fixture(scope="module")
async def sqlite_panel(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodePanel]:
    """One migrated SQLite panel shared by a module's tests (use distinct node names)."""
    directory = tmp_path_factory.mktemp("nodes-panel")
    url = f"sqlite+aiosqlite:///{directory / 'panel.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    settings = PanelSettings(data_dir=directory, max_body_bytes=256 * 1024)
    async for panel in _panel(database, settings):
        yield panel
    await database.dispose()


@pytest.fixture
async def engine_panel(database_url: str, tmp_path: Path) -> AsyncIterator[NodePanel]:
    """A fresh panel on each engine (SQLite and PostgreSQL)."""
    await migrate.upgrade(database_url)
    database = Database(database_url)
    settings = PanelSettings(data_dir=tmp_path, max_body_bytes=256 * 1024)
    async for panel in _panel(database, settings):
        yield panel
    await database.dispose()


def node_key_pem() -> str:
    """A fresh P-256 public key, as a daemon sends it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def registration_body(**overrides: object) -> dict[str, object]:
    """A valid `POST /nodes/register` body."""
    from stellarstack import __version__

    body: dict[str, object] = {
        "publicKey": node_key_pem(),
        "hostname": "10.0.0.5",
        "port": 5000,
        "specs": {"cpu": 8, "memory": 32768, "disk": 500000},
        "version": __version__,
    }
    return {**body, **overrides}
