"""Per-node Redis ACL users on a real Redis: each node reaches its own keys and nothing else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from stellarstack.broker import BrokerPermissionDenied, RedisBroker, StreamConsumer
from stellarstack.broker.base import BrokerError, StreamMessage
from stellarstack.panel.domain.nodes.credentials import NodeCredentials
from stellarstack.panel.domain.nodes.tokens import new_node_token, token_hash
from stellarstack.protocol import keys


class Node:
    """A node id, its token, and a broker logged in as its ACL user."""

    def __init__(self, redis_url: str) -> None:
        self.id = str(uuid.uuid4())
        self.token = new_node_token()
        self.redis_url = redis_url

    def broker(self, token: str | None = None) -> RedisBroker:
        return RedisBroker(
            self.redis_url,
            username=keys.node_acl_username(self.id),
            password=token or self.token,
            retries=0,
        )


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[NodeCredentials, Node, Node]]:
    credentials = NodeCredentials(redis_url)
    a, b = Node(redis_url), Node(redis_url)
    await credentials.grant(a.id, token_hash(a.token))
    await credentials.grant(b.id, token_hash(b.token))
    yield credentials, a, b


async def test_a_node_runs_its_whole_command_and_event_loop_with_its_own_user(
    nodes: tuple[NodeCredentials, Node, Node], redis_url: str
) -> None:
    _, a, _ = nodes
    panel = RedisBroker(redis_url)
    broker = a.broker()
    stream = keys.node_commands_stream(a.id)
    try:
        await panel.append(stream, {"type": "server.start"})
        handled: list[StreamMessage] = []

        async def handle(message: StreamMessage) -> None:
            handled.append(message)
            if len(handled) == 1:
                raise RuntimeError("fail once")

        consumer = StreamConsumer(
            broker, stream, keys.COMMANDS_GROUP, "daemon-a", handle,
            min_idle_ms=1, max_deliveries=5, block_ms=50,
        )  # fmt: skip
        for _ in range(20):
            await consumer.run_once()
            if len(handled) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(handled) >= 2  # read, failed, reclaimed (XAUTOCLAIM + XPENDING), handled
        assert await panel.pending_count(stream, keys.COMMANDS_GROUP) == 0  # XACK
        await broker.append(keys.node_events_stream(a.id), {"type": "node.heartbeat"}, maxlen=100)
        await broker.publish(keys.node_heartbeat_channel(a.id), "alive")
        assert await broker.ping() >= 0
        assert await panel.length(keys.node_events_stream(a.id)) == 1
    finally:
        await broker.close()
        await panel.close()


async def test_node_a_cannot_read_b_commands_or_write_as_b(
    nodes: tuple[NodeCredentials, Node, Node], redis_url: str
) -> None:
    _, a, b = nodes
    panel = RedisBroker(redis_url)
    await panel.append(keys.node_commands_stream(b.id), {"type": "server.delete"})
    await panel.ensure_group(keys.node_commands_stream(b.id), keys.COMMANDS_GROUP)
    broker = a.broker()
    try:
        attempts = [
            broker.read_group(keys.node_commands_stream(b.id), keys.COMMANDS_GROUP, "a"),
            broker.ensure_group(keys.node_commands_stream(b.id), "stolen"),
            broker.append(keys.node_events_stream(b.id), {"type": "node.heartbeat"}),
            broker.append(keys.node_commands_stream(b.id), {"type": "server.delete"}),
            broker.publish(keys.node_heartbeat_channel(b.id), "forged"),
            broker.publish(keys.GLOBAL_EVENTS_CHANNEL, "forged"),
            broker.publish(keys.server_status_channel("s1"), "forged"),
            broker.read({keys.node_commands_stream(a.id): "0"}),  # XREAD is not in its set
            broker.trim(keys.node_events_stream(a.id), maxlen=0),
            broker.length(keys.node_commands_stream(b.id)),
        ]
        for attempt in attempts:
            with pytest.raises(BrokerPermissionDenied):
                await attempt
        # B's command is untouched and still waiting for B
        assert await panel.pending_count(keys.node_commands_stream(b.id), keys.COMMANDS_GROUP) == 0
        assert await panel.length(keys.node_commands_stream(b.id)) == 1
        assert await panel.length(keys.node_events_stream(b.id)) == 0
    finally:
        await broker.close()
        await panel.close()


async def test_a_node_user_can_run_no_other_command(
    nodes: tuple[NodeCredentials, Node, Node],
) -> None:
    _, a, _ = nodes
    client = Redis.from_url(a.redis_url, username=keys.node_acl_username(a.id), password=a.token)
    try:
        own = keys.node_events_stream(a.id)
        for command in [
            ("KEYS", "*"),
            ("GET", own),
            ("SET", own + ":x", "1"),
            ("DEL", own),
            ("FLUSHALL",),
            ("CONFIG", "GET", "*"),
            ("ACL", "LIST"),
            ("ACL", "SETUSER", "evil", "on", ">x", "+@all", "~*"),
            ("CLIENT", "LIST"),
            ("EVAL", "return 1", "0"),
            ("SUBSCRIBE", keys.node_heartbeat_channel("someone-else")),
        ]:
            with pytest.raises(Exception, match=r"NOPERM|permission"):
                await client.execute_command(*command)
    finally:
        await client.aclose()


async def test_rotation_revokes_the_old_token_and_drops_its_connections(
    nodes: tuple[NodeCredentials, Node, Node],
) -> None:
    credentials, a, _ = nodes
    old = a.broker()
    try:
        await old.ping()  # an open, authenticated connection
        new_token = new_node_token()
        await credentials.rotate(a.id, token_hash(new_token))
        with pytest.raises(BrokerError):
            await old.ping()  # killed, and it cannot log in again with the old token
        refused = a.broker()
        with pytest.raises(BrokerError):
            await refused.ping()
        await refused.close()
        fresh = a.broker(new_token)
        assert await fresh.ping() >= 0
        await fresh.close()
    finally:
        await old.close()


async def test_deletion_removes_the_user(nodes: tuple[NodeCredentials, Node, Node]) -> None:
    credentials, a, b = nodes
    live = a.broker()
    await live.ping()
    await credentials.revoke(a.id)
    with pytest.raises(BrokerError):
        await live.ping()
    await live.close()
    again = a.broker()
    with pytest.raises(BrokerError):
        await again.ping()
    await again.close()
    other = b.broker()
    assert await other.ping() >= 0  # B is unaffected
    await other.close()


async def test_restore_recreates_users_from_stored_hashes(
    nodes: tuple[NodeCredentials, Node, Node], redis_url: str
) -> None:
    credentials, a, b = nodes
    admin = Redis.from_url(redis_url)
    await admin.execute_command("ACL", "DELUSER", keys.node_acl_username(a.id))
    await admin.aclose()
    await credentials.restore([(a.id, token_hash(a.token)), (b.id, token_hash(b.token))])
    broker = a.broker()
    assert await broker.ping() >= 0
    await broker.close()


async def test_without_redis_there_is_nothing_to_create() -> None:
    credentials = NodeCredentials(None)
    assert not credentials.enabled
    await credentials.grant("n1", "0" * 64)
    await credentials.rotate("n1", "0" * 64)
    await credentials.revoke("n1")
