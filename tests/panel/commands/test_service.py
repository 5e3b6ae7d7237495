"""Sending commands and following them: records, envelopes, refusals, results, tracking."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from stellarstack.broker import Broker, MemoryBroker, dead_letter_stream
from stellarstack.panel.db.enums import CommandStatus, NodeStatus
from stellarstack.panel.db.models import Node, NodeCommand
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.commands.service import send_command, wait_for
from stellarstack.panel.domain.commands.tracking import (
    EXPIRED_UNDELIVERED,
    apply_result,
    track_commands,
)
from stellarstack.panel.errors import (
    Conflict,
    DependencyUnavailable,
    PayloadTooLarge,
    ValidationFailed,
)
from stellarstack.protocol import Command, CommandResult, keys
from stellarstack.protocol.commands import CommandStatus as Outcome
from tests.panel.commands.conftest import World

LIMIT = 4096


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """The in-process broker."""
    instance = MemoryBroker()
    yield instance
    await instance.close()


async def send(
    database: Database, broker: Broker, node_id: uuid.UUID, type_: str, payload: Any = None
) -> NodeCommand:
    async with database.sessionmaker() as db:
        node = await db.get(Node, node_id)
        assert node is not None
        return await send_command(
            db,
            broker,
            node,
            type_,
            payload,
            ttl=60,
            max_payload_bytes=LIMIT,
        )


async def commands(database: Database) -> list[NodeCommand]:
    async with database.sessionmaker() as db:
        return list((await db.scalars(sa.select(NodeCommand))).all())


async def stream_entries(broker: Broker, node_id: uuid.UUID) -> list[Command]:
    entries = await broker.read({keys.node_commands_stream(str(node_id)): "0"})
    return [Command.from_fields(m.fields) for _, m in entries]


async def test_a_sent_command_is_recorded_queued_and_appended_with_the_same_id(
    panel_database: Database, broker: Broker, world: World
) -> None:
    payload = {"serverId": str(world.server_a)}
    command = await send(panel_database, broker, world.node_a, "server.start", payload)
    assert command.status == CommandStatus.QUEUED
    assert command.server_id == world.server_a and command.stream_id
    [envelope] = await stream_entries(broker, world.node_a)
    assert envelope.id == str(command.id) and envelope.type == "server.start"
    assert envelope.payload == payload
    assert envelope.expires_at - envelope.timestamp == pytest.approx(60)
    assert await stream_entries(broker, world.node_b) == []


@pytest.mark.parametrize(
    ("type_", "payload", "field"),
    [
        ("server.explode", {}, "type"),
        ("server.start", {}, "payload"),
        ("server.start", {"serverId": "../../etc"}, "payload"),
        ("server.start", {"serverId": "not-a-uuid"}, "payload.serverId"),
        ("server.stop", {"serverId": str(uuid.uuid4()), "signal": "KILL; rm -rf /"}, "payload"),
        ("server.delete", {}, "payload.serverId"),
    ],
)
async def test_malformed_commands_are_refused_and_nothing_is_recorded_or_sent(
    panel_database: Database, broker: Broker, world: World, type_: str, payload: object, field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await send(panel_database, broker, world.node_a, type_, payload)
    assert refused.value.errors[0].field == field
    assert await commands(panel_database) == []
    assert await stream_entries(broker, world.node_a) == []


async def test_a_server_of_another_node_cannot_be_targeted(
    panel_database: Database, broker: Broker, world: World
) -> None:
    with pytest.raises(ValidationFailed, match="No such server on this node"):
        await send(
            panel_database, broker, world.node_a, "server.kill", {"serverId": str(world.server_b)}
        )
    assert await stream_entries(broker, world.node_a) == []


async def test_an_oversized_payload_is_refused_with_its_size_and_the_limit(
    panel_database: Database, broker: Broker, world: World
) -> None:
    with pytest.raises(PayloadTooLarge, match=f"limit is {LIMIT} bytes"):
        await send(panel_database, broker, world.node_a, "node.update", {"blob": "x" * LIMIT})
    assert await commands(panel_database) == []


async def test_a_node_in_maintenance_takes_only_node_commands(
    panel_database: Database, broker: Broker, world: World
) -> None:
    async with panel_database.sessionmaker() as db:
        await db.execute(sa.update(Node).values(status=NodeStatus.MAINTENANCE))
        await db.commit()
    with pytest.raises(Conflict, match="maintenance"):
        await send(
            panel_database, broker, world.node_a, "server.start", {"serverId": str(world.server_a)}
        )
    assert (
        await send(panel_database, broker, world.node_a, "node.ping")
    ).status == CommandStatus.QUEUED


async def test_when_the_broker_is_down_the_command_is_recorded_failed_and_503_raised(
    panel_database: Database, world: World
) -> None:
    broker = MemoryBroker()
    await broker.close()
    with pytest.raises(DependencyUnavailable):
        await send(panel_database, broker, world.node_a, "node.ping")
    [command] = await commands(panel_database)
    assert command.status == CommandStatus.FAILED and "broker unavailable" in (command.error or "")


async def test_a_result_is_applied_once_and_only_from_the_commands_own_node(
    panel_database: Database, broker: Broker, world: World
) -> None:
    command = await send(panel_database, broker, world.node_a, "node.ping")
    at = datetime.now(UTC)
    done = CommandResult(
        command_id=str(command.id),
        command_type="node.ping",
        status=Outcome.COMPLETED,
        result={"pong": True},
    )
    async with panel_database.sessionmaker() as db:
        assert not await apply_result(db, world.node_b, done, at=at)  # forged by node B
        assert await apply_result(db, world.node_a, done, at=at)
        failed = done.model_copy(update={"status": Outcome.FAILED, "error": "late"})
        assert not await apply_result(db, world.node_a, failed, at=at)  # a replay changes nothing
        await db.commit()
    finished = await wait_for(panel_database, command.id, within=0)
    assert finished is not None and finished.status == CommandStatus.SUCCEEDED
    assert finished.result == {"pong": True} and finished.error is None
    assert finished.delivered_at is not None and finished.finished_at is not None


async def test_tracking_marks_pending_commands_delivered(
    panel_database: Database, broker: Broker, world: World
) -> None:
    command = await send(panel_database, broker, world.node_a, "node.ping")
    stream = keys.node_commands_stream(str(world.node_a))
    await broker.ensure_group(stream, keys.COMMANDS_GROUP)
    [entry] = await broker.read_group(stream, keys.COMMANDS_GROUP, "daemon-a")
    assert entry.id == command.stream_id
    async with panel_database.sessionmaker() as db:
        await track_commands(db, broker)
    delivered = await wait_for(panel_database, command.id, within=0)
    assert delivered is not None and delivered.status == CommandStatus.DELIVERED
    assert delivered.attempts == 1 and delivered.delivered_at is not None


async def test_tracking_expires_undelivered_commands_and_a_late_outcome_still_wins(
    panel_database: Database, broker: Broker, world: World
) -> None:
    command = await send(panel_database, broker, world.node_a, "node.ping")
    later = datetime.now(UTC) + timedelta(minutes=5)
    async with panel_database.sessionmaker() as db:
        await track_commands(db, broker, at=later)
    expired = await wait_for(panel_database, command.id, within=0)
    assert expired is not None and expired.status == CommandStatus.EXPIRED
    assert expired.error == EXPIRED_UNDELIVERED
    done = CommandResult(
        command_id=str(command.id), command_type="node.ping", status=Outcome.COMPLETED
    )
    async with panel_database.sessionmaker() as db:
        assert await apply_result(db, world.node_a, done, at=later)
        await db.commit()
    ran = await wait_for(panel_database, command.id, within=0)
    assert ran is not None and ran.status == CommandStatus.SUCCEEDED


async def test_tracking_records_dead_lettered_commands_once(
    panel_database: Database, broker: Broker, world: World
) -> None:
    command = await send(panel_database, broker, world.node_a, "node.ping")
    dead = dead_letter_stream(keys.node_commands_stream(str(world.node_a)))
    await broker.append(
        dead, {"id": str(command.id), "_deliveries": "5", "_error": "RuntimeError: boom"}
    )
    for _ in range(2):
        async with panel_database.sessionmaker() as db:
            await track_commands(db, broker)
    lost = await wait_for(panel_database, command.id, within=0)
    assert lost is not None and lost.status == CommandStatus.DEAD_LETTERED
    assert "5 deliveries" in (lost.error or "") and "boom" in (lost.error or "")
    assert await broker.pending_count(dead, keys.EVENTS_GROUP) == 0
