"""Event ingestion and the health sweep on a real broker and both database engines."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from stellarstack.broker import Broker, MemoryBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.events import EventPublisher
from stellarstack.panel.db.enums import CommandStatus, NodeStatus
from stellarstack.panel.db.enums import ServerStatus as StoredStatus
from stellarstack.panel.db.models import Node, Server
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.commands.service import send_command, wait_for
from stellarstack.panel.domain.events.consumer import EventIngest
from stellarstack.panel.domain.nodes.health import HealthThresholds, sweep_node_health
from stellarstack.protocol import keys
from stellarstack.protocol.events import (
    NodeHealth,
    NodeHeartbeat,
    NodeMetrics,
    ServerStatus,
    ServerStatusChange,
)
from stellarstack.settings import DaemonSettings
from tests.panel.commands.conftest import World, node_row, seed_world

METRICS = NodeMetrics(cpu=12.5, memory=40, disk=55, containers=2, network_rx=10, network_tx=20)
BEAT = NodeHeartbeat(status=NodeHealth.HEALTHY, metrics=METRICS, version="0.1.0")


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """The in-process broker."""
    instance = MemoryBroker()
    yield instance
    await instance.close()


@pytest.fixture
async def world(panel_database: Database) -> World:
    """Two nodes (A, B) with a server each."""
    return await seed_world(panel_database)


@pytest.fixture
async def ingest(
    panel_database: Database, broker: Broker, world: World
) -> AsyncIterator[EventIngest]:
    """The panel's consumer, following every node."""
    instance = EventIngest(panel_database, broker, block_ms=50, reclaim_after=0.2)
    instance.start()
    await instance.discover()
    yield instance
    await instance.stop()


async def set_status(database: Database, node_id: uuid.UUID, status: NodeStatus) -> None:
    async with database.sessionmaker() as db:
        await db.execute(sa.update(Node).where(Node.id == node_id).values(status=status))
        await db.commit()


async def until(check: object, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_heartbeat_records_metrics_and_brings_a_node_online_with_an_announcement(
    panel_database: Database, broker: Broker, world: World, ingest: EventIngest
) -> None:
    await set_status(panel_database, world.node_a, NodeStatus.UNHEALTHY)
    async with broker.subscribe(keys.GLOBAL_EVENTS_CHANNEL) as announcements:
        await EventPublisher(broker, str(world.node_a)).publish(BEAT)

        async def online() -> bool:
            return (await node_row(panel_database, world.node_a)).status == NodeStatus.ONLINE

        await until(online)
        async with asyncio.timeout(2):
            message = json.loads((await anext(announcements)).data)
    assert message["type"] == "node.status" and message["nodeId"] == str(world.node_a)
    assert message["data"] == {
        "status": "online",
        "previous": "unhealthy",
        "reason": "heartbeats resumed",
    }
    node = await node_row(panel_database, world.node_a)
    assert node.last_metrics is not None and node.last_metrics["cpu"] == 12.5
    assert node.last_metrics["health"] == "healthy" and node.daemon_version == "0.1.0"
    assert node.last_heartbeat_at is not None
    assert abs(node.last_heartbeat_at - datetime.now(UTC)) < timedelta(seconds=5)


async def test_a_heartbeat_never_overrides_draining_or_maintenance(
    panel_database: Database, broker: Broker, world: World, ingest: EventIngest
) -> None:
    await set_status(panel_database, world.node_a, NodeStatus.DRAINING)
    await EventPublisher(broker, str(world.node_a)).publish(BEAT)

    async def seen() -> bool:
        return (await node_row(panel_database, world.node_a)).last_heartbeat_at is not None

    await until(seen)
    assert (await node_row(panel_database, world.node_a)).status == NodeStatus.DRAINING


async def test_events_claiming_another_node_or_its_server_change_nothing(
    panel_database: Database, broker: Broker, world: World, ingest: EventIngest
) -> None:
    # Node B writes, on its own stream, a heartbeat in A's name and a status for A's server.
    forged = EventPublisher(broker, str(world.node_a))
    forged.stream = keys.node_events_stream(str(world.node_b))
    await forged.publish(BEAT)
    liar = EventPublisher(broker, str(world.node_b))
    crash = ServerStatusChange(status=ServerStatus.CRASHED)
    await liar.publish(crash, server_id=str(world.server_a))
    await liar.publish(crash, server_id=str(world.server_b))

    async def b_crashed() -> bool:
        async with panel_database.sessionmaker() as db:
            status = await db.scalar(sa.select(Server.status).where(Server.id == world.server_b))
        return status == StoredStatus.CRASHED

    await until(b_crashed)
    async with panel_database.sessionmaker() as db:
        assert (
            await db.scalar(sa.select(Server.status).where(Server.id == world.server_a))
            != StoredStatus.CRASHED
        )
    assert (await node_row(panel_database, world.node_a)).last_heartbeat_at is None


async def test_a_malformed_entry_is_dropped_and_the_next_event_still_applies(
    panel_database: Database, broker: Broker, world: World, ingest: EventIngest
) -> None:
    stream = keys.node_events_stream(str(world.node_a))
    await broker.append(stream, {"type": "<img src=x>", "data": "{not json"})
    await broker.append(
        stream, {"type": "node.heartbeat", "nodeId": str(world.node_a), "data": "[]"}
    )
    await EventPublisher(broker, str(world.node_a)).publish(BEAT)

    async def seen() -> bool:
        return (await node_row(panel_database, world.node_a)).last_heartbeat_at is not None

    await until(seen)
    assert await broker.pending_count(stream, keys.EVENTS_GROUP) == 0


async def test_the_sweep_walks_a_silent_node_to_unhealthy_then_offline(
    panel_database: Database, broker: Broker, world: World
) -> None:
    thresholds = HealthThresholds(timedelta(seconds=90), timedelta(seconds=150))
    beat = datetime.now(UTC)
    async with panel_database.sessionmaker() as db:
        await db.execute(sa.update(Node).values(status=NodeStatus.ONLINE, last_heartbeat_at=beat))
        await db.execute(
            sa.update(Node).where(Node.id == world.node_b).values(status=NodeStatus.MAINTENANCE)
        )
        await db.commit()
    steps = []
    for seconds in (60, 100, 120, 200):
        async with panel_database.sessionmaker() as db:
            moved = await sweep_node_health(
                db, broker, thresholds, at=beat + timedelta(seconds=seconds)
            )
        steps.append([(m.previous.value, m.status.value) for m in moved])
    assert steps == [[], [("online", "unhealthy")], [], [("unhealthy", "offline")]]
    assert (await node_row(panel_database, world.node_b)).status == NodeStatus.MAINTENANCE


async def test_a_command_runs_on_the_daemon_and_its_result_comes_back(
    panel_database: Database, broker: Broker, world: World, ingest: EventIngest, tmp_path: Path
) -> None:
    settings = DaemonSettings(
        data_dir=tmp_path / "daemon",
        node_id=str(world.node_a),
        runtime="process",
        heartbeat_interval=30,
    )
    agent = Agent(settings, broker, stop_grace=5)
    await agent.start()
    try:
        async with panel_database.sessionmaker() as db:
            node = await db.get(Node, world.node_a)
            assert node is not None
            command = await send_command(
                db, broker, node, "node.ping", ttl=30, max_payload_bytes=1024
            )
        done = await wait_for(panel_database, command.id, within=10)
    finally:
        await agent.stop()
    assert done is not None and done.status == CommandStatus.SUCCEEDED
    assert done.result is not None and done.result["pong"] is True
