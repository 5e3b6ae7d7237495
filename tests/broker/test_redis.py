"""RedisBroker against a real redis-server: restarts, outages, long blocks, ACL users."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis as redis_sync

from stellarstack.broker import (
    BrokerPermissionDenied,
    BrokerUnavailable,
    RedisBroker,
    StreamConsumer,
    StreamMessage,
)
from tests.broker.polling import wait_until
from tests.support.services import RedisServer, free_port

pytestmark = pytest.mark.redis

COMMANDS = "stellar:nodes:n1:commands"


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    """A RedisBroker on the test server."""
    instance = RedisBroker(redis_url)
    yield instance
    await instance.close()


async def test_broker_works_again_after_a_redis_restart(
    broker: RedisBroker, redis_server: RedisServer
) -> None:
    await broker.append(COMMANDS, {"n": "before"})
    redis_server.restart()  # no persistence: only reconnection is asserted, not data

    async def answers() -> bool:
        try:
            await broker.append(COMMANDS, {"n": "after"})
        except BrokerUnavailable:
            return False
        return True

    await wait_until(answers, timeout=10, interval=0.1)
    assert [m.fields for _, m in await broker.read({COMMANDS: "0"})][-1] == {"n": "after"}


async def test_consumer_keeps_consuming_after_a_redis_restart(
    broker: RedisBroker, redis_server: RedisServer
) -> None:
    seen: list[StreamMessage] = []

    async def handler(message: StreamMessage) -> None:
        seen.append(message)

    consumer = StreamConsumer(
        broker, COMMANDS, "daemon", "node-1", handler, block_ms=100, retry_backoff_s=0.05
    )
    task = asyncio.create_task(consumer.run())
    try:
        await broker.append(COMMANDS, {"n": "before"})
        await wait_until(lambda: len(seen) == 1)
        redis_server.restart()  # the group is gone too: the consumer must recreate it

        async def delivered_after_restart() -> bool:
            try:
                if not any(m.fields["n"] == "after" for m in seen):
                    await broker.append(COMMANDS, {"n": "after"})
            except BrokerUnavailable:
                return False
            return any(m.fields["n"] == "after" for m in seen)

        await wait_until(delivered_after_restart, timeout=10, interval=0.2)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 5)


async def test_subscription_is_renewed_after_a_redis_restart(
    broker: RedisBroker, redis_server: RedisServer
) -> None:
    async with broker.subscribe("stellar:live") as sub:
        reader = asyncio.create_task(anext(sub))
        await asyncio.sleep(0.05)
        redis_server.restart()

        async def received() -> bool:
            try:
                await broker.publish("stellar:live", "back")
            except BrokerUnavailable:
                return False
            return reader.done()

        await wait_until(received, timeout=10, interval=0.1)
        assert reader.result().data == "back"


async def test_unreachable_redis_raises_broker_unavailable_quickly() -> None:
    port = free_port()  # nothing listens here
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", connect_timeout=0.5, retries=1)
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.ping()
        with pytest.raises(BrokerUnavailable):
            await broker.append(COMMANDS, {"n": "1"})
        with pytest.raises(BrokerUnavailable):
            await broker.read_group(COMMANDS, "daemon", "c1", block_ms=100)
        with pytest.raises(BrokerUnavailable):
            await broker.subscribe("stellar:live").start()
    finally:
        await broker.close()


async def test_block_longer_than_the_socket_timeout_is_not_an_outage(redis_url: str) -> None:
    broker = RedisBroker(redis_url, socket_timeout=0.3)
    try:
        assert await broker.read({COMMANDS: "0"}, block_ms=700) == []
        reader = asyncio.create_task(broker.read({COMMANDS: "0"}, block_ms=10_000))
        await asyncio.sleep(0.5)  # past one block slice
        entry_id = await broker.append(COMMANDS, {"n": "1"})
        got = await asyncio.wait_for(reader, 5)
        assert [m.id for _, m in got] == [entry_id]
    finally:
        await broker.close()


@pytest.fixture
def node_user(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """A Redis ACL user allowed only its own node's keys and channels (as registration makes)."""
    name, token = f"node-{uuid.uuid4().hex[:8]}", f"strk_node_{uuid.uuid4().hex}"
    admin = redis_sync.Redis.from_url(redis_server.url)
    admin.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{token}"],
        keys=[f"stellar:nodes:{name}:*"],
        channels=[f"stellar:nodes:{name}:*"],
        commands=["+@all"],
    )
    yield name, token
    admin.acl_deluser(name)
    admin.close()


async def test_node_credentials_reach_only_that_nodes_keys(
    redis_server: RedisServer, node_user: tuple[str, str]
) -> None:
    name, token = node_user
    broker = RedisBroker(redis_server.url, username=name, password=token)
    try:
        await broker.append(f"stellar:nodes:{name}:events", {"type": "heartbeat"})
        with pytest.raises(BrokerPermissionDenied):
            await broker.append("stellar:nodes:someone-else:events", {"type": "forged"})
        with pytest.raises(BrokerPermissionDenied):
            await broker.read({"stellar:nodes:someone-else:commands": "0"})
    finally:
        await broker.close()


async def test_explicit_credentials_win_over_the_urls(
    redis_server: RedisServer, node_user: tuple[str, str]
) -> None:
    name, token = node_user
    url = f"redis://{name}:wrong-token@127.0.0.1:{redis_server.port}/0"
    broker = RedisBroker(url, username=name, password=token)
    try:
        assert await broker.ping() >= 0
    finally:
        await broker.close()


async def test_a_wrong_node_token_is_refused(
    redis_server: RedisServer, node_user: tuple[str, str]
) -> None:
    name, _ = node_user
    broker = RedisBroker(redis_server.url, username=name, password="strk_node_stolen", retries=0)
    try:
        with pytest.raises(BrokerUnavailable, match=r"(?i)auth|password|WRONGPASS"):
            await broker.ping()
    finally:
        await broker.close()
