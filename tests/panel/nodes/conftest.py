"""Node fixtures: a panel app with an admin session, on SQLite once per module or per engine."""

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
from stellarstack.settings import PanelSettings

# The double-submit CSRF pair a browser of the panel would send with its session cookie.
CSRF = "nodes-test-csrf-token"
CSRF_HEADERS = {"X-CSRF-Token": CSRF}


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


async def _session_cookie(database: Database, email: str, role: Role) -> dict[str, str]:
    async with database.sessionmaker() as db:
        user = await create_user(db, email, "correct horse battery", role=role)
        token = await create_session(db, user, ip=None, user_agent=None)
        await db.commit()
    return {SESSION_COOKIE: token, "stellar_csrf": CSRF}


async def _panel(database: Database, settings: PanelSettings) -> AsyncIterator[NodePanel]:
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    admin = await _session_cookie(database, "admin@nodes.test", Role.ADMIN)
    player = await _session_cookie(database, "player@nodes.test", Role.USER)
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
            yield NodePanel(a, p, anon, database, settings)
    await broker.close()


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
