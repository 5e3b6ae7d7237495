"""The stream under ownership changes and floods, and the status cache on the embedded default.

A real panel served by uvicorn on SQLite with the in-process broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import update

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import ServerStatus as DbServerStatus
from stellarstack.panel.db.models import Server
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.cache import cached_server_status
from stellarstack.settings import PanelSettings
from tests.panel.events.sse import SseClient, make_cast, publish_status, reason_of, serve

CAP = 3
RECHECK = 0.3


@dataclass
class Served:
    """A served panel, its broker and database."""

    url: str
    broker: MemoryBroker
    database: Database


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """A panel allowing 3 streams per user, re-checking access every 0.3 s."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    broker = MemoryBroker()
    settings = PanelSettings(
        data_dir=tmp_path_factory.mktemp("panel"),
        events_max_streams_per_user=CAP,
        events_access_recheck=RECHECK,
    )
    async with serve(create_app(settings, database=database, broker=broker)) as base:
        yield Served(base, broker, database)
    await broker.close()
    await database.dispose()


async def test_a_server_transferred_to_another_owner_moves_its_events_with_it(
    served: Served,
) -> None:
    cast = await make_cast(served.database)
    async with (
        SseClient(served.url, cast.headers["alice"]) as alice,
        SseClient(served.url, cast.headers["bob"]) as bob,
    ):
        async with served.database.sessionmaker() as db:
            await db.execute(
                update(Server).where(Server.id == cast.server_a).values(owner_id=cast.users["bob"])
            )
            await db.commit()
        await asyncio.sleep(RECHECK * 3)
        await publish_status(served.broker, cast, cast.server_a, "now bob's")
        assert reason_of(await bob.next()) == "now bob's"
        assert await alice.quiet(0.3) == []


async def test_a_user_cannot_hold_more_than_the_cap_of_streams(served: Served) -> None:
    cast = await make_cast(served.database)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(CAP):
            await stack.enter_async_context(SseClient(served.url, cast.headers["bob"]))
        async with httpx.AsyncClient(base_url=served.url) as client:
            refused = await client.get("/api/v1/events/stream", headers=cast.headers["bob"])
        other = await stack.enter_async_context(SseClient(served.url, cast.headers["alice"]))
        assert other.status_code == 200  # the cap is per user
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert "close some tabs" in refused.json()["error"]["detail"]
    # Closed streams free their places.
    await asyncio.sleep(0.2)
    async with SseClient(served.url, cast.headers["bob"]) as again:
        assert again.status_code == 200


async def test_the_embedded_cache_serves_fresh_status_and_the_database_otherwise(
    served: Served,
) -> None:
    cast = await make_cast(served.database)
    async with served.database.sessionmaker() as db:
        before = await cached_server_status(served.broker, db, cast.server_b)
        await publish_status(served.broker, cast, cast.server_b, "cached")
        after = await cached_server_status(served.broker, db, cast.server_b)
        missing = await cached_server_status(served.broker, db, cast.node_id)
    assert before is not None and before.source == "database"
    assert before.value == {"status": DbServerStatus.OFFLINE.value}
    assert after is not None and after.source == "cache"
    assert after.value["status"] == "running" and after.value["reason"] == "cached"
    assert missing is None  # not a server
