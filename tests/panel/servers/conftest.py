"""Servers API fixtures: one panel per engine and module, and helpers that add what a test needs.

Each test makes its own users, nodes and ports through `ServersPanel`, so tests sharing the
module's panel never see each other's rows. The broker is the in-process one; commands sent to
a node are read back from its stream with `commands_of`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.csrf import CSRF_COOKIE
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import BlueprintSource, NodeStatus, Role
from stellarstack.panel.db.models import Allocation, Node, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.service import save_blueprint
from stellarstack.protocol import Command, keys
from stellarstack.settings import PanelSettings
from tests.panel.db.factories import digest
from tests.support.game_image import game_blueprint_yaml

# A blueprint with free-text variables, a config file and a second (udp) port, to show values
# stay inert wherever they land.
TALKY_YAML = """\
slug: talky
name: Talky
category: testing
docker: {image: stellarstack-test/game:latest}
resources: {memory_mb: 256, cpu: 50, disk_mb: 512}
ports:
  - {name: game, port: 25565, protocol: tcp}
  - {name: query, port: 25566, protocol: udp, env: QUERY_PORT}
variables:
  - {env: MOTD, name: Message of the day, default: hello, rules: "required|string|max:200"}
  - {env: MAX_PLAYERS, name: Max players, default: "10", rules: "required|integer|between:1,100"}
  - {env: SECRET, name: Secret, default: s3cret, user_editable: false, user_viewable: false}
startup:
  command: 'exec sh /game.sh --motd {{MOTD}} --players ${MAX_PLAYERS}'
  stop: {command: stop, timeout: 10}
  ready: {type: log, pattern: 'Server ready', timeout: 30}
config_files:
  - path: server.properties
    parser: properties
    set: {motd: "{{MOTD}}", max-players: "{{MAX_PLAYERS}}"}
versions:
  - {tag: "2.0", name: "2.0", recommended: true}
  - {tag: "1.0", name: "1.0", image: "stellarstack-test/game:1.0"}
"""


class Caller(httpx.AsyncClient):
    """A signed-in client that knows its user's id."""

    def __init__(self, user_id: uuid.UUID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_id = user_id


# Started by its image's own entrypoint (like the catalogue's Minecraft blueprints).
ENTRYPOINT_YAML = """\
slug: entrypoint-only
name: Entrypoint only
docker: {image: stellarstack-test/game:latest}
ports: [{name: game, port: 25565}]
startup:
  stop: {signal: SIGTERM}
"""

# Valid as a blueprint, but its startup command leaves a quote open: it cannot be rendered.
OPEN_QUOTE_YAML = ENTRYPOINT_YAML.replace("entrypoint-only", "open-quote").replace(
    "startup:", 'startup:\n  command: "exec sh \'/game.sh"'
)

DISABLED_YAML = ENTRYPOINT_YAML.replace("entrypoint-only", "switched-off").replace(
    "startup:", "startup:\n  command: 'exec sh /game.sh'"
)


@dataclass
class ServersPanel:
    """The running app, its database and broker, and factories for callers, nodes and ports."""

    database: Database
    broker: MemoryBroker
    transport: httpx.ASGITransport
    settings: PanelSettings
    clients: list[Caller] = field(default_factory=list)

    async def user(self, role: Role = Role.USER, **quotas: int | None) -> Caller:
        """A signed-in client of a new user (`max_servers=…` and friends set quotas)."""
        email = f"u-{uuid.uuid4().hex[:12]}@servers.test"
        async with self.database.sessionmaker() as db:
            user = User(email=email, name=email[:14], password_hash="!", role=role, **quotas)
            db.add(user)
            await db.flush()
            token = await create_session(db, user, ip="127.0.0.1", user_agent="tests")
            await db.commit()
        csrf = secrets.token_urlsafe(24)
        client = Caller(
            user.id,
            transport=self.transport,
            base_url="http://testserver",
            cookies={SESSION_COOKIE: token, CSRF_COOKIE: csrf},
            headers={"X-CSRF-Token": csrf},
        )
        self.clients.append(client)
        return client

    async def node(
        self,
        ports: list[int] | tuple[int, ...] = (30001, 30002),
        *,
        status: NodeStatus = NodeStatus.ONLINE,
        memory_mb: int = 8192,
        region: str = "eu-west",
        public: bool = True,
    ) -> uuid.UUID:
        """A node with free allocations on 10.0.0.1 at `ports`."""
        name = f"n-{uuid.uuid4().hex[:10]}"
        async with self.database.sessionmaker() as db:
            node = Node(
                name=name,
                fqdn=f"{name}.nodes.test",
                region=region,
                public=public,
                cpu_cores=8,
                memory_mb=memory_mb,
                disk_mb=200_000,
                status=status,
                api_token_hash=digest(name),
            )
            db.add(node)
            await db.flush()
            db.add_all(Allocation(node_id=node.id, ip="10.0.0.1", port=p) for p in ports)
            await db.commit()
            return node.id

    async def allocations(self, node_id: uuid.UUID) -> list[Allocation]:
        """A node's allocations by port."""
        async with self.database.sessionmaker() as db:
            rows = await db.execute(
                sa.select(Allocation).where(Allocation.node_id == node_id).order_by(Allocation.port)
            )
            return list(rows.scalars())

    async def commands_of(self, node_id: uuid.UUID) -> list[Command]:
        """Every command appended to a node's stream, oldest first."""
        stream = keys.node_commands_stream(str(node_id))
        entries = await self.broker.read({stream: "0"}, count=1000)
        return [Command.from_fields(message.fields) for _, message in entries]

    @asynccontextmanager
    async def app_with_broker_down(
        self, like: httpx.AsyncClient
    ) -> AsyncIterator[httpx.AsyncClient]:
        """`like`'s credentials on a second app (same database) whose broker is closed."""
        broker = MemoryBroker()
        app = create_app(self.settings, database=self.database, broker=broker)
        async with LifespanManager(app) as manager:
            await broker.close()
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://testserver",
                cookies=like.cookies,
                headers=like.headers,
            ) as client:
                yield client

    async def count(self, model: Any, **where: Any) -> int:
        """How many rows of `model` match the equality filters."""
        async with self.database.sessionmaker() as db:
            query = sa.select(sa.func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return int(await db.scalar(query) or 0)


async def _install_blueprints(database: Database) -> None:
    async with database.sessionmaker() as db:
        for text in (
            game_blueprint_yaml(),
            TALKY_YAML,
            ENTRYPOINT_YAML,
            OPEN_QUOTE_YAML,
            DISABLED_YAML,
        ):
            spec = BlueprintSpec.from_yaml(text)
            saved = await save_blueprint(
                db, spec, source=BlueprintSource.OPERATOR, source_ref=None, source_hash=None
            )
            saved.row.enabled = spec.slug != "switched-off"
        await db.commit()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def panel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServersPanel]:
    """One migrated panel per module and engine with the test blueprints installed."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('servers') / 'panel.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    await migrate.upgrade(url)
    database = Database(url)
    await _install_blueprints(database)
    settings = PanelSettings(
        data_dir=tmp_path_factory.mktemp("servers-data"), server_delete_wait=1.0
    )
    broker = MemoryBroker()
    app = create_app(settings, database=database, broker=broker)
    async with LifespanManager(app) as manager:
        built = ServersPanel(database, broker, httpx.ASGITransport(app=manager.app), settings)
        yield built
        for client in built.clients:
            await client.aclose()
    await broker.close()
    await database.dispose()
