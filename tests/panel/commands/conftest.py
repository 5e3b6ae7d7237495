"""Command fixtures: people, two nodes and a server in a migrated database, signed-in clients."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import Blueprint, Node, Server, User
from stellarstack.panel.db.session import Database
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
        return World(*tokens, node_a.id, node_b.id, server_a.id, server_b.id)


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


__all__ = ["World", "node_row", "seed_world", "signed_in", "User"]
