"""A cast of callers for access-control tests: every role, subusers, keys, dead credentials.

Built once per module (sessions and keys are rows made directly, no password hashing), on
SQLite or PostgreSQL; `headers(name)` gives the credentials an actor sends.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.api_keys import issue_key
from stellarstack.panel.auth.csrf import CSRF_COOKIE
from stellarstack.panel.auth.permissions import PLATFORM_PERMISSIONS, SERVER_PERMISSIONS
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session, hash_token
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import ApiKeyKind, Role
from stellarstack.panel.db.models import ApiKey, Session, Subuser, User
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.panel.db.factories import make_blueprint, make_node, make_server

ACTORS = (
    "anonymous",
    "other_user",
    "subuser_without",
    "subuser_with",
    "owner",
    "support",
    "moderator",
    "admin",
    "super_admin",
    "key_with",
    "key_without",
    "app_key_with",
    "app_key_without",
    "suspended",
    "revoked_key",
    "expired_session",
)
# The permission the "without" subuser and client key hold: real, but unrelated to most routes.
UNRELATED_SERVER_PERMISSION = "server.console"
UNRELATED_PLATFORM_PERMISSION = "platform.billing"


@dataclass
class World:
    """The database, the app client and who is who."""

    database: Database
    client: httpx.AsyncClient
    users: dict[str, User] = field(default_factory=dict)
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    server_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def headers(self, actor: str) -> dict[str, str]:
        """What this actor sends with each request."""
        return dict(self.credentials.get(actor, {}))

    def user_of(self, actor: str) -> User:
        """The account behind an actor (keys: their owner)."""
        owners = {"key_with": "owner", "key_without": "owner", "revoked_key": "owner"}
        owners |= {"app_key_with": "super_admin", "app_key_without": "super_admin"}
        owners |= {"expired_session": "owner"}
        return self.users[owners.get(actor, actor)]


async def add_user(db_handle: Database, email: str, role: Role = Role.USER) -> User:
    """A user without a usable password (tests sign in through sessions made directly)."""
    async with db_handle.sessionmaker() as db:
        user = User(email=email, name=email.split("@")[0], password_hash="!", role=role)
        db.add(user)
        await db.commit()
        return user


async def session_for(db_handle: Database, user: User) -> dict[str, str]:
    """A browser's headers for a fresh session: the cookies and the CSRF token it repeats."""
    async with db_handle.sessionmaker() as db:
        token = await create_session(db, user, ip="127.0.0.1", user_agent="tests")
        await db.commit()
    csrf = secrets.token_urlsafe(32)
    return {
        "Cookie": f"{SESSION_COOKIE}={token}; {CSRF_COOKIE}={csrf}",
        "X-CSRF-Token": csrf,
    }


async def key_for(
    db_handle: Database,
    user: User,
    permissions: list[str],
    *,
    kind: ApiKeyKind = ApiKeyKind.CLIENT,
    revoked: bool = False,
    expires_at: datetime | None = None,
    return_id: bool = False,
) -> Any:
    """A bearer header for a new API key of this user (or the key's id, with `return_id`)."""
    issued = issue_key()
    async with db_handle.sessionmaker() as db:
        key = ApiKey(
            user_id=user.id,
            name="test key",
            prefix=issued.prefix,
            key_hash=issued.key_hash,
            kind=kind,
            permissions=permissions,
            revoked_at=datetime.now(UTC) if revoked else None,
            expires_at=expires_at,
        )
        db.add(key)
        await db.commit()
    return key.id if return_id else {"Authorization": f"Bearer {issued.token}"}


async def _populate(world: World) -> None:
    database = world.database
    roles = {
        "owner": Role.USER,
        "other_user": Role.USER,
        "subuser_without": Role.USER,
        "subuser_with": Role.USER,
        "support": Role.SUPPORT,
        "moderator": Role.MODERATOR,
        "admin": Role.ADMIN,
        "super_admin": Role.SUPER_ADMIN,
        "suspended": Role.USER,
    }
    for name, role in roles.items():
        world.users[name] = await add_user(database, f"{name}@example.test", role)
        world.credentials[name] = await session_for(database, world.users[name])
    async with database.sessionmaker() as db:
        node, blueprint = make_node(), make_blueprint()
        server = make_server(world.users["owner"], node, blueprint)
        db.add_all([node, blueprint, server])
        db.add(
            Subuser(
                user_id=world.users["subuser_without"].id,
                server_id=server.id,
                permissions=[UNRELATED_SERVER_PERMISSION],
            )
        )
        db.add(
            Subuser(
                user_id=world.users["subuser_with"].id,
                server_id=server.id,
                permissions=sorted(SERVER_PERMISSIONS),
            )
        )
        suspended = await db.get(User, world.users["suspended"].id)
        assert suspended is not None
        suspended.suspended = True
        expired_token = "expired-session-token"
        db.add(
            Session(
                user_id=world.users["owner"].id,
                token_hash=hash_token(expired_token),
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        await db.commit()
        world.server_id = server.id
    world.credentials["expired_session"] = {
        "Cookie": f"{SESSION_COOKIE}={expired_token}; {CSRF_COOKIE}={'c' * 32}",
        "X-CSRF-Token": "c" * 32,
    }
    owner, boss = world.users["owner"], world.users["super_admin"]
    world.credentials["key_with"] = await key_for(database, owner, sorted(SERVER_PERMISSIONS))
    world.credentials["key_without"] = await key_for(database, owner, [UNRELATED_SERVER_PERMISSION])
    world.credentials["revoked_key"] = await key_for(
        database, owner, sorted(SERVER_PERMISSIONS), revoked=True
    )
    world.credentials["app_key_with"] = await key_for(
        database, boss, sorted(PLATFORM_PERMISSIONS), kind=ApiKeyKind.APPLICATION
    )
    world.credentials["app_key_without"] = await key_for(
        database, boss, [UNRELATED_PLATFORM_PERMISSION], kind=ApiKeyKind.APPLICATION
    )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    """One migrated database and app per module and engine, with the whole cast."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('access') / 'access.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    await migrate.upgrade(url)
    database = Database(url)
    # Loopback is a trusted proxy, so a test can speak for another address (X-Forwarded-For).
    settings = PanelSettings(
        data_dir=tmp_path_factory.mktemp("access-data"), trusted_proxies=["127.0.0.1"]
    )
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            built = World(database, client)
            await _populate(built)
            yield built
    await broker.close()
    await database.dispose()
