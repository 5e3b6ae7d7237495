"""Who receives which live events: owners, subusers, staff; access re-checked mid-stream.

A real panel (uvicorn on loopback) on SQLite and PostgreSQL; events go through the real
fan-out on the embedded broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, update

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.models import ApiKey, Subuser, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.visibility import notify_access_changed
from stellarstack.settings import PanelSettings
from tests.panel.admin.world import key_for
from tests.panel.events.sse import (
    Cast,
    SseClient,
    make_cast,
    publish_node,
    publish_status,
    reason_of,
    serve,
)

# Re-checks every 0.3 s so revocations show within a test's patience; a notification acts
# at once. Heartbeats stay out of the way.
RECHECK = 0.3


@dataclass
class Panels:
    """Two served panels on one database: fast re-checks, and re-checks far apart."""

    url: str
    broker: MemoryBroker
    slow_url: str
    slow_broker: MemoryBroker
    database: Database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def panels(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Panels]:
    """Served once per module and engine (each test makes its own cast)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    await migrate.upgrade(url)
    database = Database(url)
    data_dir = tmp_path_factory.mktemp("panel")
    fast = PanelSettings(data_dir=data_dir, events_access_recheck=RECHECK, events_heartbeat=30)
    slow = PanelSettings(data_dir=data_dir, events_access_recheck=60, events_heartbeat=30)
    broker, slow_broker = MemoryBroker(), MemoryBroker()
    async with (
        serve(create_app(fast, database=database, broker=broker)) as fast_url,
        serve(create_app(slow, database=database, broker=slow_broker)) as slow_url,
    ):
        yield Panels(fast_url, broker, slow_url, slow_broker, database)
    await broker.close()
    await slow_broker.close()
    await database.dispose()


@pytest.fixture
async def panel(panels: Panels) -> tuple[str, MemoryBroker]:
    """The fast-re-check panel's URL and broker."""
    return panels.url, panels.broker


@pytest.fixture
def panel_database(panels: Panels) -> Database:
    """The panels' database."""
    return panels.database


@pytest.fixture
async def cast(panel_database: Database) -> Cast:
    """Alice, Bob, Carol (subuser of Alice's server) and an admin (fresh for each test)."""
    return await make_cast(panel_database)


async def test_each_user_receives_only_the_events_of_servers_they_may_see(
    panel: tuple[str, MemoryBroker], cast: Cast
) -> None:
    url, broker = panel
    async with (
        SseClient(url, cast.headers["alice"]) as alice,
        SseClient(url, cast.headers["bob"]) as bob,
        SseClient(url, cast.headers["carol"]) as carol,
        SseClient(url, cast.headers["root"]) as root,
    ):
        assert alice.content_type.startswith("text/event-stream")
        await publish_status(broker, cast, cast.server_a, "a-1")
        await publish_status(broker, cast, cast.server_b, "b-1")
        await publish_node(broker, cast, "node-1")

        first = await alice.next()
        assert (first["event"], reason_of(first)) == ("server.status", "a-1")
        assert first["id"]
        assert json.loads(first["data"])["serverId"] == str(cast.server_a)
        assert reason_of(await bob.next()) == "b-1"
        assert reason_of(await carol.next()) == "a-1"
        staff = [await root.next() for _ in range(3)]
        assert [e["event"] for e in staff] == ["server.status", "server.status", "node.status"]
        # Nothing else for anyone: not the other user's server, not the node-wide event.
        for client in (alice, bob, carol):
            assert await client.quiet(0.3) == []


async def test_servers_filter_narrows_and_never_widens(
    panel: tuple[str, MemoryBroker], cast: Cast
) -> None:
    url, broker = panel
    # Alice asks for Bob's server and her own: she gets only hers.
    both = f"?servers={cast.server_b},{cast.server_a}"
    async with (
        SseClient(url, cast.headers["alice"], both) as alice,
        SseClient(url, cast.headers["root"], f"?servers={cast.server_b}") as root,
    ):
        await publish_status(broker, cast, cast.server_b, "b-1")
        await publish_node(broker, cast, "node-1")
        await publish_status(broker, cast, cast.server_a, "a-1")
        assert reason_of(await alice.next()) == "a-1"
        assert reason_of(await root.next()) == "b-1"
        assert await alice.quiet(0.2) == []
        assert await root.quiet(0.2) == []  # narrowed: not A, not node-wide events


async def test_a_subuser_whose_permission_is_revoked_stops_receiving_within_seconds(
    panel: tuple[str, MemoryBroker], cast: Cast, panel_database: Database
) -> None:
    url, broker = panel
    async with SseClient(url, cast.headers["carol"]) as carol:
        await publish_status(broker, cast, cast.server_a, "before")
        assert reason_of(await carol.next()) == "before"
        # Revoked in the database only (no notification): the periodic re-check catches it.
        async with panel_database.sessionmaker() as db:
            await db.execute(
                update(Subuser).where(Subuser.id == cast.carol_subuser).values(permissions=[])
            )
            await db.commit()
        await asyncio.sleep(RECHECK * 3)
        await publish_status(broker, cast, cast.server_a, "after")
        assert await carol.quiet(0.5) == []
        assert not carol.ended.is_set()  # still signed in: the stream lives on, empty


async def test_a_removed_subuser_stops_at_once_when_the_change_is_announced(
    panels: Panels, cast: Cast
) -> None:
    # Re-checks far apart here: only the access-change notification can cut Carol off in time.
    url, broker = panels.slow_url, panels.slow_broker
    async with (
        SseClient(url, cast.headers["carol"]) as carol,
        SseClient(url, cast.headers["alice"]) as alice,
    ):
        await publish_status(broker, cast, cast.server_a, "before")
        assert reason_of(await carol.next()) == "before"
        async with panels.database.sessionmaker() as db:
            await db.execute(delete(Subuser).where(Subuser.id == cast.carol_subuser))
            await db.commit()
        await notify_access_changed(broker, cast.users["carol"])
        await asyncio.sleep(0.2)
        await publish_status(broker, cast, cast.server_a, "after")
        assert reason_of(await alice.next()) == "before"
        assert reason_of(await alice.next()) == "after"
        assert await carol.quiet(0.3) == []


async def test_a_suspended_user_or_revoked_key_ends_the_stream(
    panel: tuple[str, MemoryBroker], cast: Cast, panel_database: Database
) -> None:
    url, broker = panel
    async with panel_database.sessionmaker() as db:
        bob = await db.get(User, cast.users["bob"])
    assert bob is not None
    key_headers = await key_for(panel_database, bob, ["server.view"])
    async with (
        SseClient(url, cast.headers["alice"]) as alice,
        SseClient(url, key_headers) as bob_key,
    ):
        await publish_status(broker, cast, cast.server_b, "b-1")
        assert reason_of(await bob_key.next()) == "b-1"
        async with panel_database.sessionmaker() as db:
            await db.execute(
                update(User).where(User.id == cast.users["alice"]).values(suspended=True)
            )
            await db.execute(
                update(ApiKey).where(ApiKey.user_id == bob.id).values(revoked_at=datetime.now(UTC))
            )
            await db.commit()
        for client in (alice, bob_key):
            closing = await client.next(timeout=RECHECK * 10)
            assert closing["event"] == "stellar.closed"
            await asyncio.wait_for(client.ended.wait(), 5)


async def test_a_key_without_server_view_sees_nothing(
    panel: tuple[str, MemoryBroker], cast: Cast, panel_database: Database
) -> None:
    url, broker = panel
    async with panel_database.sessionmaker() as db:
        alice = await db.get(User, cast.users["alice"])
    assert alice is not None
    narrow = await key_for(panel_database, alice, ["server.console"])
    async with SseClient(url, narrow) as client:
        await publish_status(broker, cast, cast.server_a, "a-1")
        assert await client.quiet(0.3) == []
