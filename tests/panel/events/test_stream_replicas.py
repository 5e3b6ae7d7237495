"""Several panel replicas on one Redis: streams, resume and caches work across them; and what
happens when Redis is down (503 for the stream, degraded health, caches fall back to the DB)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from stellarstack.broker import RedisBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import ServerStatus as DbServerStatus
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.cache import (
    cached_node_status,
    cached_server_metrics,
    cached_server_status,
)
from stellarstack.panel.domain.events.fanout import publish_event
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, ServerMetrics
from stellarstack.settings import PanelSettings
from tests.panel.events.sse import (
    Cast,
    SseClient,
    make_cast,
    publish_node,
    publish_status,
    reason_of,
    serve,
)
from tests.support.services import free_port, stop_process


@dataclass
class Replicas:
    """Two served panels (each with its own Redis connection) on one Redis and one database."""

    urls: tuple[str, str]
    brokers: tuple[RedisBroker, RedisBroker]
    database: Database
    cast: Cast
    redis_url: str


@pytest.fixture(scope="module")
async def replicas(
    redis_server: object, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Replicas]:
    """Two replicas, as behind a load balancer."""
    redis_url = redis_server.url  # type: ignore[attr-defined]
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    settings = PanelSettings(data_dir=tmp_path_factory.mktemp("panel"), redis_url=redis_url)
    one, two = RedisBroker(redis_url), RedisBroker(redis_url)
    cast = await make_cast(database)
    async with (
        serve(create_app(settings, database=database, broker=one)) as url_one,
        serve(create_app(settings, database=database, broker=two)) as url_two,
    ):
        yield Replicas((url_one, url_two), (one, two), database, cast, redis_url)
    await one.close()
    await two.close()
    await database.dispose()


async def test_an_event_fanned_out_by_one_replica_reaches_a_client_of_the_other(
    replicas: Replicas,
) -> None:
    cast = replicas.cast
    async with (
        SseClient(replicas.urls[0], cast.headers["alice"]) as on_one,
        SseClient(replicas.urls[1], cast.headers["alice"]) as on_two,
    ):
        await publish_status(replicas.brokers[0], cast, cast.server_a, "from-one")
        await publish_status(replicas.brokers[1], cast, cast.server_a, "from-two")
        for client in (on_one, on_two):
            got = [await client.next(), await client.next()]
            assert [reason_of(e) for e in got] == ["from-one", "from-two"]
        assert (await on_one.quiet(0.1)) == (await on_two.quiet(0.1)) == []


async def test_a_client_resumes_on_the_other_replica_where_it_left_off(
    replicas: Replicas,
) -> None:
    cast = replicas.cast
    async with SseClient(replicas.urls[0], cast.headers["carol"]) as first:
        await publish_status(replicas.brokers[0], cast, cast.server_a, "seen")
        seen = await first.next()
    await publish_status(replicas.brokers[0], cast, cast.server_a, "missed-1")
    await publish_status(replicas.brokers[1], cast, cast.server_a, "missed-2")
    headers = {**cast.headers["carol"], "Last-Event-ID": seen["id"]}
    async with SseClient(replicas.urls[1], headers) as second:
        assert [reason_of(await second.next()) for _ in range(2)] == ["missed-1", "missed-2"]
        assert await second.quiet(0.2) == []


async def test_status_and_metrics_are_cached_in_redis_with_the_spec_ttls(
    replicas: Replicas,
) -> None:
    cast = replicas.cast
    broker = replicas.brokers[0]
    await publish_status(broker, cast, cast.server_a, "cached")
    metrics = ServerMetrics(
        cpu=12.5, memory=1024, memory_limit=2048, disk=1, network_rx=2, network_tx=3, uptime=4
    )
    await publish_event(
        broker, Event.create(metrics, node_id=str(cast.node_id), server_id=str(cast.server_a))
    )
    await publish_node(broker, cast, "back")
    # Read through the other replica's connection: the cache is shared.
    other = replicas.brokers[1]
    async with replicas.database.sessionmaker() as db:
        status = await cached_server_status(other, db, cast.server_a)
        node = await cached_node_status(other, db, cast.node_id)
    assert status is not None and status.source == "cache"
    assert status.value["status"] == "running" and status.value["reason"] == "cached"
    assert (await cached_server_metrics(other, cast.server_a) or {})["cpu"] == 12.5
    assert node is not None and node.source == "cache" and node.value["status"] == "online"
    client = aioredis.Redis.from_url(replicas.redis_url)
    try:
        status_ttl = await client.ttl(keys.server_status_cache_key(str(cast.server_a)))
        metrics_ttl = await client.ttl(f"cache:server:{cast.server_a}:metrics")
    finally:
        await client.aclose()
    assert 25 <= status_ttl <= 30
    assert 5 <= metrics_ttl <= 10


async def test_with_redis_down_the_stream_is_503_health_is_degraded_and_reads_use_the_db(
    replicas: Replicas, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", retries=0, connect_timeout=0.5)
    settings = PanelSettings(data_dir=tmp_path_factory.mktemp("dead"))
    app = create_app(settings, database=replicas.database, broker=dead)
    cast = replicas.cast
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        stream = await client.get("/api/v1/events/stream", headers=cast.headers["alice"])
        health = await client.get("/health")
        async with replicas.database.sessionmaker() as db:
            status = await cached_server_status(dead, db, cast.server_a)
            node = await cached_node_status(dead, db, cast.node_id)
        metrics = await cached_server_metrics(dead, cast.server_a)
    await dead.close()
    assert stream.status_code == 503
    assert stream.headers["retry-after"] == "5"
    assert "Redis" in stream.json()["error"]["detail"]
    body = health.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["degraded"] == ["redis"]
    assert status is not None and status.source == "database"
    assert status.value == {"status": DbServerStatus.OFFLINE.value}
    assert node is not None and node.source == "database" and node.value["status"] == "online"
    assert metrics is None


async def test_a_stream_says_degraded_when_redis_stops_and_resumes_when_it_returns(
    replicas: Replicas, redis_server: object
) -> None:
    cast = replicas.cast
    async with SseClient(replicas.urls[0], cast.headers["alice"]) as client:
        await publish_status(replicas.brokers[0], cast, cast.server_a, "before")
        assert reason_of(await client.next()) == "before"
        await asyncio.to_thread(stop_process, redis_server.proc)  # type: ignore[attr-defined]
        assert (await client.next(timeout=20))["event"] == "stellar.degraded"
        await asyncio.to_thread(redis_server.restart)  # type: ignore[attr-defined]
        assert (await client.next(timeout=20))["event"] == "stellar.resync"
        await publish_status(replicas.brokers[0], cast, cast.server_a, "after")
        assert reason_of(await client.next(timeout=10)) == "after"
