"""The agent on a real broker: commands run at most once, expiry, results, heartbeats, stop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stellarstack import __version__
from stellarstack.broker import Broker, MemoryBroker, RedisBroker
from stellarstack.daemon.agent import STATE_FILE, Agent
from stellarstack.daemon.errors import DaemonStartError
from stellarstack.daemon.runtime import ContainerSpec, ContainerStatus
from stellarstack.daemon.state import DaemonState
from stellarstack.protocol import (
    Command,
    CommandResult,
    CommandStatus,
    CommandType,
    Event,
    EventType,
    NodeHealth,
    NodeHeartbeat,
    keys,
)
from stellarstack.settings import DaemonSettings
from tests.daemon.waiting import events_until, eventually


def settings_for(tmp_path: Path, node_id: str | None, **overrides: object) -> DaemonSettings:
    """Daemon settings in a temporary data directory, process runtime, fast heartbeats."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "daemon",
        "node_id": node_id,
        "runtime": "process",
        "heartbeat_interval": 0.2,
    }
    return DaemonSettings(**(values | overrides))


@pytest.fixture
def node_id() -> str:
    """A fresh node id."""
    return f"node-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    """The in-process broker of the embedded default."""
    instance = MemoryBroker()
    yield instance
    await instance.close()


@pytest.fixture
async def agent(tmp_path: Path, node_id: str, broker: Broker) -> AsyncIterator[Agent]:
    """A started agent for `node_id`, stopped at the end."""
    instance = Agent(settings_for(tmp_path, node_id), broker, stop_grace=5)
    await instance.start()
    yield instance
    await instance.stop()


async def send(broker: Broker, node_id: str, command: Command) -> None:
    """Deliver a command the way the panel does."""
    await broker.append(keys.node_commands_stream(node_id), command.to_fields())


def results_for(events: list[Event], command_id: str) -> list[CommandResult]:
    """The command.result events about one command, in order."""
    return [
        result
        for event in events
        if event.type == EventType.COMMAND_RESULT
        and (result := event.data_as(CommandResult)).command_id == command_id
    ]


async def wait_results(
    broker: Broker, node_id: str, command_id: str, count: int = 1
) -> list[CommandResult]:
    """Wait for `count` results about a command."""
    stream = keys.node_events_stream(node_id)
    events = await events_until(
        broker, stream, lambda evs: len(results_for(evs, command_id)) >= count
    )
    return results_for(events, command_id)


async def create_counting_server(agent: Agent, server_id: str, tmp_path: Path) -> Path:
    """A server that appends a line to runs.txt each time it starts; returns that file."""
    directory = tmp_path / server_id
    await agent.runtime.create(
        ContainerSpec(
            server_id=server_id,
            command=("sh", "-c", "echo run >> runs.txt; exec sleep 600"),
            volume_dir=directory,
        )
    )
    return directory / "runs.txt"


async def test_a_command_is_run_and_its_result_published(
    agent: Agent, broker: Broker, node_id: str
) -> None:
    command = Command.create(CommandType.NODE_PING, ttl=30)
    await send(broker, node_id, command)
    [result] = await wait_results(broker, node_id, command.id)
    assert result.status is CommandStatus.COMPLETED and not result.replayed
    assert result.result == {"pong": True, "runtime": "process", "version": __version__}
    stream = keys.node_commands_stream(node_id)

    async def acked() -> bool:
        return await broker.pending_count(stream, keys.COMMANDS_GROUP) == 0

    await eventually(acked)


async def test_power_commands_drive_the_runtime(
    agent: Agent, broker: Broker, node_id: str, tmp_path: Path
) -> None:
    runs = await create_counting_server(agent, "srv-power", tmp_path)
    start = Command.create(CommandType.SERVER_START, {"serverId": "srv-power"})
    await send(broker, node_id, start)
    [started] = await wait_results(broker, node_id, start.id)
    assert started.status is CommandStatus.COMPLETED
    assert started.result["status"] == "running"
    await eventually(runs.exists)
    stop = Command.create(
        CommandType.SERVER_STOP, {"serverId": "srv-power", "signal": "SIGTERM", "grace": 5}
    )
    await send(broker, node_id, stop)
    [stopped] = await wait_results(broker, node_id, stop.id)
    assert stopped.status is CommandStatus.COMPLETED
    assert stopped.result == {"serverId": "srv-power", "status": "exited", "exitCode": 143}


async def test_an_expired_command_is_reported_expired_and_not_run(
    agent: Agent, broker: Broker, node_id: str, tmp_path: Path
) -> None:
    runs = await create_counting_server(agent, "srv-late", tmp_path)
    late = Command.create(CommandType.SERVER_START, {"serverId": "srv-late"}, ttl=5, at=1000.0)
    await send(broker, node_id, late)
    [result] = await wait_results(broker, node_id, late.id)
    assert result.status is CommandStatus.EXPIRED
    assert result.error is not None and "expired" in result.error
    assert (await agent.runtime.status("srv-late")).status is ContainerStatus.CREATED
    assert not runs.exists()


async def test_the_same_command_id_delivered_twice_runs_once(
    agent: Agent, broker: Broker, node_id: str, tmp_path: Path
) -> None:
    # A restart run twice would start the server twice: two lines in runs.txt.
    runs = await create_counting_server(agent, "srv-once", tmp_path)
    command = Command.create(CommandType.SERVER_RESTART, {"serverId": "srv-once", "grace": 5})
    await send(broker, node_id, command)
    await send(broker, node_id, command)
    first, second = await wait_results(broker, node_id, command.id, count=2)
    assert (first.status, first.replayed) == (CommandStatus.COMPLETED, False)
    assert (second.status, second.replayed) == (CommandStatus.COMPLETED, True)
    assert second.result == first.result
    await eventually(runs.exists)
    assert runs.read_text() == "run\n"


async def test_a_command_interrupted_by_a_crash_is_not_run_again(
    tmp_path: Path, node_id: str, broker: Broker
) -> None:
    settings = settings_for(tmp_path, node_id)
    command = Command.create(CommandType.NODE_PING)
    state = await DaemonState.open(settings.data_dir / STATE_FILE)
    await state.begin_command(command, at=command.timestamp)  # begun, then the daemon "died"
    await state.close()
    agent = Agent(settings, broker)
    await agent.start()
    try:
        await send(broker, node_id, command)
        [result] = await wait_results(broker, node_id, command.id)
    finally:
        await agent.stop()
    assert result.status is CommandStatus.FAILED
    assert result.error is not None and result.error.startswith("interrupted")


@pytest.mark.parametrize(
    ("command", "status", "error"),
    [
        (Command.create(CommandType.BACKUP_CREATE), CommandStatus.FAILED, "not supported"),
        (Command.create("future.command"), CommandStatus.FAILED, "not supported"),
        (
            Command.create(CommandType.SERVER_START, {"serverId": "missing"}),
            CommandStatus.FAILED,
            "no such server",
        ),
        (
            Command.create(CommandType.SERVER_START, {"serverId": "../../etc"}),
            CommandStatus.FAILED,
            "invalid server.start payload",
        ),
    ],
)
async def test_commands_that_cannot_run_are_reported_failed_with_a_reason(
    agent: Agent, broker: Broker, node_id: str, command: Command, status: str, error: str
) -> None:
    await send(broker, node_id, command)
    [result] = await wait_results(broker, node_id, command.id)
    assert result.status == status
    assert result.error is not None and error in result.error


async def test_an_entry_that_is_not_a_command_is_rejected_and_acknowledged(
    agent: Agent, broker: Broker, node_id: str
) -> None:
    stream = keys.node_commands_stream(node_id)
    await broker.append(stream, {"id": "bad-1", "type": "server.start", "payload": "{oops"})
    [result] = await wait_results(broker, node_id, "bad-1")
    assert result.status is CommandStatus.REJECTED
    assert result.error is not None and "not JSON" in result.error

    async def acked() -> bool:
        return await broker.pending_count(stream, keys.COMMANDS_GROUP) == 0

    await eventually(acked)


async def test_heartbeats_carry_host_metrics_on_the_event_stream(
    agent: Agent, broker: Broker, node_id: str, tmp_path: Path
) -> None:
    await create_counting_server(agent, "srv-counted", tmp_path)

    def beats(events: list[Event]) -> list[NodeHeartbeat]:
        return [e.data_as(NodeHeartbeat) for e in events if e.type == EventType.NODE_HEARTBEAT]

    events = await events_until(
        broker,
        keys.node_events_stream(node_id),
        lambda evs: any(b.metrics.containers == 1 for b in beats(evs)) and len(beats(evs)) >= 2,
    )
    beat = beats(events)[-1]
    assert beat.status is NodeHealth.HEALTHY and beat.runtime == "process"
    assert beat.metrics.memory_total > 0 and 0 <= beat.metrics.cpu <= 100
    assert beat.metrics.disk_total > 0
    assert all(e.node_id == node_id for e in events)


async def test_an_unregistered_daemon_idles_and_stops_cleanly(
    tmp_path: Path, broker: Broker
) -> None:
    agent = Agent(settings_for(tmp_path, None), broker)
    await agent.start()
    assert agent.running and agent.node_id is None and agent.runtime.name == "process"
    await asyncio.sleep(0.3)
    assert agent.failures == []
    await agent.stop()
    assert not agent.running
    assert (tmp_path / "daemon" / STATE_FILE).exists()


async def test_stop_leaves_no_tasks_behind_and_can_start_again(
    tmp_path: Path, node_id: str, broker: Broker
) -> None:
    before = asyncio.all_tasks()
    agent = Agent(settings_for(tmp_path, node_id), broker)
    await agent.start()
    await agent.stop()
    assert asyncio.all_tasks() - before == set()
    await agent.start()
    command = Command.create(CommandType.NODE_PING)
    await send(broker, node_id, command)
    await wait_results(broker, node_id, command.id)
    await agent.stop()
    assert asyncio.all_tasks() - before == set()


async def test_demanding_docker_without_an_engine_fails_to_start_with_a_reason(
    tmp_path: Path, node_id: str, broker: Broker
) -> None:
    settings = settings_for(
        tmp_path, node_id, runtime="docker", docker_host="unix:///nonexistent/docker.sock"
    )
    agent = Agent(settings, broker)
    with pytest.raises(DaemonStartError, match="runtime 'docker' is not available"):
        await agent.start()
    assert not agent.running


async def test_a_hostile_node_id_is_refused_at_start(tmp_path: Path, broker: Broker) -> None:
    agent = Agent(settings_for(tmp_path, "n1:*"), broker)
    with pytest.raises(ValueError, match="invalid node id"):
        await agent.start()


async def test_commands_round_trip_over_redis(tmp_path: Path, node_id: str, redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    agent = Agent(settings_for(tmp_path, node_id), broker)
    await agent.start()
    try:
        command = Command.create(CommandType.NODE_PING)
        await send(broker, node_id, command)
        [result] = await wait_results(broker, node_id, command.id)
        assert result.status is CommandStatus.COMPLETED
    finally:
        await agent.stop()
        await broker.close()
