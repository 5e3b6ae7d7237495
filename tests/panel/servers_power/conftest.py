"""Power-action fixtures: one panel per module on (SQLite + in-process broker) and
(PostgreSQL + Redis), and a fresh server with its people for each test.

The app runs its lifespan, so the real event consumer applies what a test (playing the
daemon) appends to a node's event stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import Broker, MemoryBroker, RedisBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import BlueprintSource, NodeStatus, Role, ServerStatus
from stellarstack.panel.db.models import AuditLog, Blueprint, NodeCommand, ServerVariable, Subuser
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.service import save_blueprint
from stellarstack.protocol import keys
from stellarstack.protocol.commands import Command
from stellarstack.settings import PanelSettings
from tests.panel.admin.world import add_user, session_for
from tests.panel.db.factories import make_blueprint, make_node, make_server
from tests.support.game_image import game_blueprint_yaml

__all__ = [
    "Scene",
    "Stage",
    "audit_actions",
    "command_row",
    "game_blueprint",
    "new_scene",
    "queued_commands",
]


@dataclass
class Stage:
    """One running panel: its database, broker and an HTTP client over ASGI."""

    database: Database
    broker: Broker
    client: httpx.AsyncClient


@dataclass
class Scene:
    """A server on its own node, its owner, a stranger and two subusers."""

    server_id: uuid.UUID
    node_id: uuid.UUID
    owner_id: uuid.UUID
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def path(self, action: str) -> str:
        """The API path of an action on this server."""
        return f"/api/v1/servers/{self.server_id}/{action}"


@pytest.fixture(scope="module", params=["sqlite+memory", "postgres+redis"])
async def stage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stage]:
    """A migrated database and a running panel per module, on each engine and broker."""
    broker: Broker
    if request.param == "sqlite+memory":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('power') / 'power.db'}"
        broker = MemoryBroker()
    else:
        postgres = request.getfixturevalue("postgres_server")
        url = postgres.url(postgres.create_database())
        broker = RedisBroker(request.getfixturevalue("redis_server").url)
    await migrate.upgrade(url)
    database = Database(url)
    data_dir: Path = tmp_path_factory.mktemp("power-data")
    settings = PanelSettings(data_dir=data_dir, node_discovery_period=0.1)
    app = create_app(settings, database=database, broker=broker)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Stage(database, broker, client)
    await broker.close()
    await database.dispose()


@pytest.fixture(scope="module")
async def game_blueprint(stage: Stage) -> uuid.UUID:
    """The test game's blueprint, stored once per panel (a real, renderable one)."""
    async with stage.database.sessionmaker() as db:
        spec = BlueprintSpec.from_yaml(game_blueprint_yaml())
        saved = await save_blueprint(
            db, spec, source=BlueprintSource.OPERATOR, source_ref=None, source_hash=None
        )
        await db.commit()
        return saved.row.id


async def new_scene(
    stage: Stage,
    *,
    status: ServerStatus = ServerStatus.OFFLINE,
    node_status: NodeStatus = NodeStatus.ONLINE,
    suspended: bool = False,
    subuser_permissions: list[str] | None = None,
    blueprint_id: uuid.UUID | None = None,
) -> Scene:
    """A fresh server (and node, blueprint, people) so tests never share a power lock."""
    tag = uuid.uuid4().hex[:10]
    database = stage.database
    owner = await add_user(database, f"owner-{tag}@example.test")
    stranger = await add_user(database, f"stranger-{tag}@example.test")
    helper = await add_user(database, f"helper-{tag}@example.test")
    watcher = await add_user(database, f"watcher-{tag}@example.test")
    moderator = await add_user(database, f"mod-{tag}@example.test", Role.MODERATOR)
    async with database.sessionmaker() as db:
        node, blueprint = make_node(f"node-{tag}"), make_blueprint(f"bp-{tag}")
        node.status = node_status
        node.api_token_hash = f"hash-{tag}"
        server = make_server(owner, node, blueprint, f"World {tag}")
        if blueprint_id is not None:  # a real blueprint (the spec builder can render it)
            server.blueprint = await db.get_one(Blueprint, blueprint_id)
            server.version_tag = "1.0"
            db.add(ServerVariable(server=server, key="WORLD_NAME", value=f"w{tag}"))
        server.status = status
        if suspended:
            server.status = ServerStatus.SUSPENDED
            server.suspended_at = sa.func.now()
            server.suspend_reason = "unpaid"
        db.add_all([node, blueprint, server])
        await db.flush()
        granted = subuser_permissions or ["server.view", "server.power.start"]
        db.add(Subuser(user_id=helper.id, server_id=server.id, permissions=granted))
        db.add(Subuser(user_id=watcher.id, server_id=server.id, permissions=["server.console"]))
        await db.commit()
        scene = Scene(server.id, node.id, owner.id)
    for name, user in {
        "owner": owner,
        "stranger": stranger,
        "helper": helper,
        "watcher": watcher,
        "moderator": moderator,
    }.items():
        scene.headers[name] = await session_for(database, user)
    return scene


async def queued_commands(stage: Stage, node_id: uuid.UUID) -> list[Command]:
    """Every command on the node's command stream, oldest first (what the daemon would read)."""
    entries = await stage.broker.read({keys.node_commands_stream(str(node_id)): "0"}, count=1000)
    return [Command.from_fields(message.fields) for _, message in entries]


async def command_row(stage: Stage, command_id: str | uuid.UUID) -> NodeCommand:
    """The panel's record of a command."""
    async with stage.database.sessionmaker() as db:
        row = await db.get(NodeCommand, uuid.UUID(str(command_id)))
        assert row is not None
        return row


async def audit_actions(stage: Stage, server_id: uuid.UUID) -> list[AuditLog]:
    """Audit entries about a server, oldest first."""
    async with stage.database.sessionmaker() as db:
        rows = await db.scalars(
            sa.select(AuditLog)
            .where(AuditLog.resource == "server", AuditLog.resource_id == str(server_id))
            .order_by(AuditLog.created_at)
        )
        return list(rows)
