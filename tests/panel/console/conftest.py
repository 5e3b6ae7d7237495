"""Console fixtures: the authorization world's cast on an app whose settings the test knows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.pki import ca_directory
from stellarstack.panel.domain.nodes.signing_key import PanelSigningKey
from stellarstack.settings import PanelSettings
from tests.panel.admin.world import World, _populate


@dataclass
class ConsoleWorld:
    """The cast (owner, subusers, staff, keys) and the panel's public signing key."""

    world: World
    public_key: Ed25519PublicKey
    data_dir: Path


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def console_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ConsoleWorld]:
    """One migrated database and app per module and engine, with the whole cast."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    await migrate.upgrade(url)
    database = Database(url)
    data_dir = tmp_path_factory.mktemp("console-data")
    settings = PanelSettings(data_dir=data_dir, trusted_proxies=["127.0.0.1"])
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            world = World(database, client)
            await _populate(world)
            key = PanelSigningKey.load_or_create(ca_directory(settings))
            yield ConsoleWorld(world, key.private_key.public_key(), data_dir)
    await broker.close()
    await database.dispose()
