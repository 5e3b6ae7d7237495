"""Resuming the event stream with Last-Event-ID, heartbeats, and forged ids.

On the embedded broker and on a real Redis (the replay log is a MemoryBroker stream or the
Redis stream `stellar:events:log`); a real panel served by uvicorn, SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from stellarstack.broker import Broker, MemoryBroker, RedisBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.fanout import EVENTS_LOG
from stellarstack.settings import PanelSettings
from tests.panel.events.sse import Cast, SseClient, make_cast, publish_status, reason_of, serve


@dataclass
class Served:
    """A served panel, its broker and the cast."""

    url: str
    broker: Broker
    cast: Cast


@pytest.fixture(scope="module", params=["memory", "redis"])
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    """One panel per broker kind, heartbeats every 0.2 s."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    broker: Broker
    if request.param == "redis":
        broker = RedisBroker(request.getfixturevalue("redis_server").url)
    else:
        broker = MemoryBroker()
    settings = PanelSettings(
        data_dir=tmp_path_factory.mktemp("panel"), events_heartbeat=0.2, events_access_recheck=5
    )
    cast = await make_cast(database)
    async with serve(create_app(settings, database=database, broker=broker)) as base:
        yield Served(base, broker, cast)
    await broker.close()
    await database.dispose()


async def test_resume_after_a_disconnect_misses_nothing_and_repeats_nothing(
    served: Served,
) -> None:
    cast, alice = served.cast, served.cast.headers["alice"]
    async with SseClient(served.url, alice) as first:
        await publish_status(served.broker, cast, cast.server_a, "1")
        seen = await first.next()
        assert reason_of(seen) == "1"
    for n in ("2", "3"):  # while disconnected
        await publish_status(served.broker, cast, cast.server_a, n)
    await publish_status(served.broker, cast, cast.server_b, "bob's")
    async with SseClient(served.url, {**alice, "Last-Event-ID": seen["id"]}) as again:
        assert [reason_of(await again.next()) for _ in range(2)] == ["2", "3"]
        await publish_status(served.broker, cast, cast.server_a, "4")
        assert reason_of(await again.next()) == "4"
        assert await again.quiet(0.3) == []


async def test_resume_while_events_keep_coming_has_no_gap_and_no_duplicate(
    served: Served,
) -> None:
    cast, alice = served.cast, served.cast.headers["alice"]
    total = 150

    async def publish_all() -> None:
        for n in range(total):
            await publish_status(served.broker, cast, cast.server_a, f"seq-{n}")
            await asyncio.sleep(0.004)

    received: list[str] = []
    async with SseClient(served.url, alice) as first:
        publisher = asyncio.create_task(publish_all())
        while len(received) < 40:
            event = await first.next()
            received.append(reason_of(event))
            last_id = event["id"]
    # Reconnect (by query parameter this time) while the publisher is still going.
    query = f"?lastEventId={last_id}"
    async with SseClient(served.url, alice, query) as again:
        while len(received) < total:
            received.append(reason_of(await again.next()))
        await publisher
        assert await again.quiet(0.2) == []
    assert received == [f"seq-{n}" for n in range(total)]


async def test_an_idle_stream_gets_heartbeat_comments_and_a_retry_hint(served: Served) -> None:
    async with SseClient(served.url, served.cast.headers["bob"]) as bob:
        await asyncio.sleep(1.0)
        assert bob.retry == "3000"
        assert bob.comments.count("keep-alive") >= 3
        assert not bob.ended.is_set()


async def test_a_resume_point_trimmed_from_the_log_asks_the_client_to_resync(
    served: Served,
) -> None:
    cast = served.cast
    for n in range(3):
        await publish_status(served.broker, cast, cast.server_a, f"old-{n}")
    async with SseClient(served.url, cast.headers["alice"]) as probe:
        await publish_status(served.broker, cast, cast.server_a, "marker")
        marker = await probe.next()
    await served.broker.trim(EVENTS_LOG, maxlen=1)  # only "marker" is left
    ms = int(marker["id"].split("-")[0])
    stale = f"{ms - 60_000}-0"
    headers = {**cast.headers["alice"], "Last-Event-ID": stale}
    async with SseClient(served.url, headers) as again:
        notice = await again.next()
        assert notice["event"] == "stellar.resync"
        assert reason_of(await again.next()) == "marker"


@pytest.mark.parametrize(
    "forged",
    [
        "garbage",
        "1-2-3",
        "-1",
        "9" * 30,
        "18446744073709551616-0",
        "1" * 70,
        "<script>alert(1)</script>",
        "0x10-0",
    ],
)
async def test_a_malformed_last_event_id_is_a_400_that_says_what_to_send(
    served: Served, forged: str
) -> None:
    headers = {**served.cast.headers["alice"], "Last-Event-ID": forged}
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.get("/api/v1/events/stream", headers=headers)
    assert response.status_code == 400
    detail = response.json()["error"]["detail"]
    assert "Last-Event-ID" in detail
    assert "<script>" not in detail


async def test_a_far_future_last_event_id_is_treated_as_from_now(served: Served) -> None:
    cast = served.cast
    await publish_status(served.broker, cast, cast.server_a, "past")
    headers = {**cast.headers["alice"], "Last-Event-ID": "18446744073709551615-0"}
    async with SseClient(served.url, headers) as client:
        await publish_status(served.broker, cast, cast.server_a, "live")
        assert reason_of(await client.next()) == "live"
        assert await client.quiet(0.2) == []


async def test_servers_filter_rejects_what_is_not_a_server_id(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        bad = await client.get(
            "/api/v1/events/stream?servers=../../etc,<b>x</b>",
            headers=served.cast.headers["alice"],
        )
        anonymous = await client.get("/api/v1/events/stream")
    assert bad.status_code == 422
    assert bad.json()["error"]["errors"][0]["field"] == "servers"
    assert anonymous.status_code == 401


async def test_many_streams_of_one_user_each_get_every_event(served: Served) -> None:
    cast = served.cast
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(SseClient(served.url, cast.headers["carol"]))
            for _ in range(20)
        ]
        await publish_status(served.broker, cast, cast.server_a, "fan")
        got = await asyncio.gather(*(c.next() for c in clients))
    assert {reason_of(e) for e in got} == {"fan"}
    assert len({e["id"] for e in got}) == 1
