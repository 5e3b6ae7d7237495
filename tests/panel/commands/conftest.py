"""Command fixtures: people, two nodes and a server in a migrated database, signed-in clients."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import Blueprint, Node, Server, User
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.panel.db.factories import make_blueprint, make_node, make_server, make_user


@dataclass(frozen=True, slots=True)
class World:
    """Ids of the rows command tests use, and session tokens of the people."""

    admin_token: str
    owner_token: str
    stranger_token: str
    node_a: uuid.UUID
    node_b: uuid.UUID
    server_a: uuid.UUID
    server_b: uuid.UUID


async def seed_world(database: Database) -> World:
    """An admin, a server owner and a stranger; nodes A and B with one server each."""
    async with database.sessionmaker() as db:
        admin = make_user("admin@example.test", Role.ADMIN)
        owner = make_user("owner@example.test")
        stranger = make_user("stranger@example.test")
        node_a, node_b = make_node("node-a"), make_node("node-b")
        blueprint: Blueprint = make_blueprint()
        server_a: Server = make_server(owner, node_a, blueprint, "A world")
        server_b: Server = make_server(owner, node_b, blueprint, "B world")
        db.add_all([admin, owner, stranger, node_a, node_b, blueprint, server_a, server_b])
        await db.flush()
        tokens = [
            await create_session(db, u, ip=None, user_agent=None) for u in (admin, owner, stranger)
        ]
        await db.commit()
        admin_token, owner_token, stranger_token = tokens
        return World(
            admin_token,
            owner_token,
            stranger_token,
            node_a.id,
            node_b.id,
            server_a.id,
            server_b.id,
        )


@pytest.fixture
def panel_settings(tmp_path: Path) -> PanelSettings:
    """The panel's settings with a small command payload cap (4 KiB)."""
    return PanelSettings(
        data_dir=tmp_path, max_body_bytes=64 * 1024, command_max_payload_bytes=4096
    )


@pytest.fixture
async def panel_app(
    panel_settings: PanelSettings, panel_database: Database
) -> AsyncIterator[FastAPI]:
    """The full panel app with its lifespan running (background work included)."""
    broker = MemoryBroker()
    app = create_app(panel_settings, database=panel_database, broker=broker)
    async with LifespanManager(app):
        yield app
    await broker.close()


@pytest.fixture
async def client(panel_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of `panel_app` over ASGI."""
    transport = httpx.ASGITransport(app=panel_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def world(panel_database: Database) -> World:
    """The seeded rows (on SQLite and PostgreSQL)."""
    return await seed_world(panel_database)


def signed_in(client: httpx.AsyncClient, token: str) -> httpx.AsyncClient:
    """A client sharing `client`'s transport, carrying a session and a CSRF pair."""
    csrf = secrets.token_urlsafe(16)
    return httpx.AsyncClient(
        transport=client._transport,
        base_url=client.base_url,
        cookies={SESSION_COOKIE: token, "stellar_csrf": csrf},
        headers={"x-csrf-token": csrf, "origin": str(client.base_url)},
    )


@pytest.fixture
async def admin(client: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The admin's client."""
    async with signed_in(client, world.admin_token) as c:
        yield c


@pytest.fixture
async def owner(client: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The server owner's client."""
    async with signed_in(client, world.owner_token) as c:
        yield c


@pytest.fixture
async def stranger(client: httpx.AsyncClient, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in user who owns nothing."""
    async with signed_in(client, world.stranger_token) as c:
        yield c


async def node_row(database: Database, node_id: uuid.UUID) -> Node:
    """A fresh copy of a node row."""
    async with database.sessionmaker() as db:
        node = await db.get(Node, node_id)
        assert node is not None
        return node


__all__ = ["User", "World", "node_row", "seed_world", "signed_in"]
