"""Commands of different servers run concurrently, of one server in order, node-level at once.

Two layers: the node's command loop exactly as the agent wires it (`command_consumer`,
`consume_commands`, the executor and its SQLite record) around a scripted handler table where
only timing and order matter, on MemoryBroker and a real Redis; and the real Agent with the
process runtime, where a stop that waits out its grace holds up nothing but its own server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stellarstack.broker import Broker, MemoryBroker, RedisBroker, StreamMessage
from stellarstack.broker.lanes import LanedStreamConsumer
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.commands import (
    CommandExecutor,
    command_consumer,
    command_lane,
    consume_commands,
)
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import ContainerSpec
from stellarstack.daemon.state import DaemonState
from stellarstack.protocol import Command, CommandStatus, CommandType, Event, keys
from tests.daemon.test_agent import results_for, send, settings_for, wait_results
from tests.daemon.waiting import eventually


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A fresh broker of each implementation."""
    instance: Broker
    if request.param == "memory":
        instance = MemoryBroker()
    else:
        instance = RedisBroker(str(request.getfixturevalue("redis_url")))
    yield instance
    await instance.close()


@pytest.fixture
def node_id() -> str:
    """A fresh node id."""
    return f"node-{uuid.uuid4().hex[:8]}"


class Script:
    """A handler table whose server commands hold until their server's gate opens."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []  # ("begin" | "end", command id)
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.peak = 0

    def gate(self, server_id: str) -> asyncio.Event:
        """The gate that holds `server_id`'s commands (closed until set)."""
        return self.gates.setdefault(server_id, asyncio.Event())

    def began(self, command_id: str) -> int:
        """How many times a command's handler was entered."""
        return self.log.count(("begin", command_id))

    async def work(self, command: Command) -> dict[str, Any]:
        """Hold until the server's gate is open (or `seconds` pass when given)."""
        server_id = str(command.payload["serverId"])
        self.log.append(("begin", command.id))
        self.running.add(command.id)
        self.peak = max(self.peak, len(self.running))
        try:
            if "seconds" in command.payload:
                await asyncio.sleep(float(command.payload["seconds"]))
            else:
                await self.gate(server_id).wait()
        finally:
            self.running.discard(command.id)
        self.log.append(("end", command.id))
        return {"serverId": server_id}

    async def pong(self, command: Command) -> dict[str, Any]:
        """Answer at once."""
        self.log.append(("begin", command.id))
        self.log.append(("end", command.id))
        return {"pong": True}

    async def drain(self, command: Command) -> dict[str, Any]:
        """A node-level command that holds until the gate "node" opens."""
        self.log.append(("begin", command.id))
        await self.gate("node").wait()
        self.log.append(("end", command.id))
        return {"drained": True}

    def table(self) -> dict[str, Any]:
        """Command type -> scripted handler."""
        return {
            CommandType.NODE_PING: self.pong,
            CommandType.NODE_DRAIN: self.drain,
            CommandType.SERVER_START: self.work,
            CommandType.SERVER_STOP: self.work,
        }


class Loop:
    """One life of a node's command loop over a state file (start, stop, or kill it)."""

    def __init__(self, broker: Broker, node_id: str, path: Path, script: Script) -> None:
        self.broker, self.node_id, self.path, self.script = broker, node_id, path, script
        self.consumer: LanedStreamConsumer | None = None
        self.state: DaemonState | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, max_concurrent: int = 16) -> None:
        """Open the state and consume (recovering what is pending first)."""
        self.state = await DaemonState.open(self.path)
        executor = CommandExecutor(
            self.state, EventPublisher(self.broker, self.node_id), self.script.table()
        )
        self.consumer = command_consumer(
            self.broker, self.node_id, executor.handle, max_concurrent=max_concurrent, block_ms=50
        )
        self.task = asyncio.create_task(consume_commands(self.consumer))

    async def stop(self) -> None:
        """Graceful: running commands finish, then the state closes."""
        assert self.consumer is not None and self.task is not None and self.state is not None
        self.consumer.stop()
        await asyncio.wait_for(self.task, 10)
        await self.state.close()

    async def kill(self) -> None:
        """Like SIGKILL: the loop and its handlers die where they are; nothing is recorded."""
        assert self.task is not None and self.state is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.state.close()


@pytest.fixture
async def loop(broker: Broker, node_id: str, tmp_path: Path) -> AsyncIterator[Loop]:
    """A node command loop around a fresh Script; stopped at the end."""
    instance = Loop(broker, node_id, tmp_path / "state.db", Script())
    yield instance
    for gate in instance.script.gates.values():
        gate.set()
    if instance.task is not None and not instance.task.done():
        await instance.stop()


def power(kind: CommandType, server_id: str, **extra: Any) -> Command:
    """A server command for the scripted table."""
    return Command.create(kind, {"serverId": server_id, **extra})


async def pending(broker: Broker, node_id: str) -> int:
    """Entries of the node's command stream not acknowledged yet."""
    return await broker.pending_count(keys.node_commands_stream(node_id), keys.COMMANDS_GROUP)


async def test_a_ping_and_another_servers_command_finish_while_a_slow_one_runs(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start()
    slow = power(CommandType.SERVER_START, "srv-a")
    ping = Command.create(CommandType.NODE_PING)
    other = power(CommandType.SERVER_START, "srv-b", seconds=0)
    for command in (slow, ping, other):
        await send(broker, node_id, command)
    [pinged] = await wait_results(broker, node_id, ping.id)
    [done] = await wait_results(broker, node_id, other.id)
    assert (pinged.status, done.status) == (CommandStatus.COMPLETED, CommandStatus.COMPLETED)
    assert loop.script.running == {slow.id}  # A still holds while B is done
    assert await pending(broker, node_id) == 1  # only A's entry is unacknowledged
    loop.script.gate("srv-a").set()
    [finished] = await wait_results(broker, node_id, slow.id)
    assert finished.status is CommandStatus.COMPLETED
    await eventually(lambda: _none_pending(broker, node_id))


async def _none_pending(broker: Broker, node_id: str) -> bool:
    return await pending(broker, node_id) == 0


async def test_commands_of_one_server_run_one_after_the_other_in_stream_order(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start()
    first = power(CommandType.SERVER_START, "srv-a")
    rest = [power(CommandType.SERVER_STOP, "srv-a", seconds=0.01) for _ in range(4)]
    for command in (first, *rest):
        await send(broker, node_id, command)
    await asyncio.sleep(0.2)
    assert loop.script.log == [("begin", first.id)]  # the others wait behind it
    loop.script.gate("srv-a").set()
    await wait_results(broker, node_id, rest[-1].id)
    ids = [first.id, *(c.id for c in rest)]
    assert loop.script.log == [(step, i) for i in ids for step in ("begin", "end")]


async def test_no_more_than_the_bound_run_at_once_and_node_commands_pass_it(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start(max_concurrent=2)
    held = [power(CommandType.SERVER_START, f"srv-{i}") for i in range(5)]
    for command in held:
        await send(broker, node_id, command)
    await eventually(lambda: len(loop.script.running) == 2)
    ping = Command.create(CommandType.NODE_PING)
    await send(broker, node_id, ping)
    [pinged] = await wait_results(broker, node_id, ping.id)
    assert pinged.status is CommandStatus.COMPLETED
    assert len(loop.script.running) == 2 and loop.script.peak == 2
    for gate in [loop.script.gate(f"srv-{i}") for i in range(5)]:
        gate.set()
    for command in held:
        [result] = await wait_results(broker, node_id, command.id)
        assert result.status is CommandStatus.COMPLETED
    assert loop.script.peak == 2


async def test_a_loop_killed_mid_command_redelivers_it_and_does_not_run_it_again(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start()
    cut = power(CommandType.SERVER_STOP, "srv-a")
    queued = power(CommandType.SERVER_START, "srv-a", seconds=0)
    elsewhere = power(CommandType.SERVER_START, "srv-b", seconds=0)
    for command in (cut, queued, elsewhere):
        await send(broker, node_id, command)
    await wait_results(broker, node_id, elsewhere.id)
    assert loop.script.running == {cut.id}
    await loop.kill()
    assert await pending(broker, node_id) == 2  # the cut one and the one queued behind it
    await loop.start()  # the next life of the daemon
    [interrupted] = await wait_results(broker, node_id, cut.id)
    [ran] = await wait_results(broker, node_id, queued.id)
    assert interrupted.status is CommandStatus.FAILED
    assert interrupted.error is not None and interrupted.error.startswith("interrupted")
    assert ran.status is CommandStatus.COMPLETED
    assert [loop.script.began(c.id) for c in (cut, queued, elsewhere)] == [1, 1, 1]
    await eventually(lambda: _none_pending(broker, node_id))


async def test_stop_lets_running_commands_finish_and_leaves_queued_ones_for_next_start(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start()
    running = power(CommandType.SERVER_STOP, "srv-a", seconds=0.3)
    queued = power(CommandType.SERVER_START, "srv-a", seconds=0)
    await send(broker, node_id, running)
    await send(broker, node_id, queued)
    await eventually(lambda: loop.script.running == {running.id})
    started = time.monotonic()
    await loop.stop()
    assert time.monotonic() - started >= 0.2  # stop waited for the running command
    [result] = await wait_results(broker, node_id, running.id)
    assert result.status is CommandStatus.COMPLETED
    assert loop.script.began(queued.id) == 0
    assert await pending(broker, node_id) == 1
    await loop.start()
    [later] = await wait_results(broker, node_id, queued.id)
    assert later.status is CommandStatus.COMPLETED and not later.replayed
    assert loop.script.began(queued.id) == 1


async def test_an_id_delivered_again_while_it_runs_is_replayed_not_reported_interrupted(
    loop: Loop, broker: Broker, node_id: str
) -> None:
    await loop.start()
    drain = Command.create(CommandType.NODE_DRAIN)  # node-level: both copies start at once
    await send(broker, node_id, drain)
    await send(broker, node_id, drain)
    await eventually(lambda: loop.script.began(drain.id) == 1)
    await asyncio.sleep(0.1)
    loop.script.gate("node").set()
    first, second = await wait_results(broker, node_id, drain.id, count=2)
    assert (first.status, first.replayed) == (CommandStatus.COMPLETED, False)
    assert (second.status, second.replayed) == (CommandStatus.COMPLETED, True)
    assert loop.script.began(drain.id) == 1


def entry(**fields: str) -> StreamMessage:
    """A raw command stream entry."""
    return StreamMessage("1-0", fields)


@pytest.mark.parametrize(
    ("fields", "lane"),
    [
        ({"payload": '{"serverId":"srv-1"}'}, "server:srv-1"),
        ({"payload": '{"serverId":"srv-1","grace":5}', "type": "server.stop"}, "server:srv-1"),
        ({"payload": "{}"}, None),
        ({}, None),
        ({"payload": "{oops"}, None),
        ({"payload": '["serverId"]'}, None),
        ({"payload": '{"serverId": 7}'}, None),
        ({"payload": '{"serverId": ""}'}, None),
        ({"payload": '{"serverId": {"$gt": ""}}'}, None),
        ({"payload": '{"serverId":"' + "x" * (1 << 20) + '"}'}, None),
    ],
)
def test_an_entry_lane_is_its_server_or_none_for_anything_else(
    fields: dict[str, str], lane: str | None
) -> None:
    assert command_lane(entry(**fields)) == lane


# --- the real agent, process runtime ------------------------------------------------------


async def create_stubborn_server(agent: Agent, server_id: str, tmp_path: Path) -> None:
    """A server that ignores SIGTERM, so a stop waits out its whole grace."""
    await agent.runtime.create(
        ContainerSpec(
            server_id=server_id,
            command=("sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"),
            volume_dir=tmp_path / server_id,
        )
    )


async def test_a_stop_waiting_out_its_grace_delays_neither_a_ping_nor_another_server(
    tmp_path: Path, node_id: str, broker: Broker
) -> None:
    agent = Agent(settings_for(tmp_path, node_id), broker, stop_grace=10)
    await agent.start()
    try:
        await create_stubborn_server(agent, "srv-slow", tmp_path)
        await create_stubborn_server(agent, "srv-quick", tmp_path)
        await agent.servers.power("srv-slow", "start")
        slow = power(CommandType.SERVER_STOP, "srv-slow", signal="SIGTERM", grace=2)
        ping = Command.create(CommandType.NODE_PING)
        start = power(CommandType.SERVER_START, "srv-quick")
        stop = power(CommandType.SERVER_STOP, "srv-quick", signal="SIGKILL", grace=1)
        sent = time.monotonic()
        for command in (slow, ping, start, stop):
            await send(broker, node_id, command)
        [pinged] = await wait_results(broker, node_id, ping.id)
        [started] = await wait_results(broker, node_id, start.id)
        [stopped] = await wait_results(broker, node_id, stop.id)
        quick = time.monotonic() - sent
        [slowed] = await wait_results(broker, node_id, slow.id)
        whole = time.monotonic() - sent
    finally:
        await agent.stop()
    assert pinged.status is CommandStatus.COMPLETED
    assert (started.status, started.result["status"]) == (CommandStatus.COMPLETED, "running")
    assert (stopped.status, stopped.result["status"]) == (CommandStatus.COMPLETED, "exited")
    assert slowed.status is CommandStatus.COMPLETED and slowed.result["exitCode"] == 137
    assert quick < 1.5 <= whole, (quick, whole)


async def test_agent_stop_lets_an_in_flight_stop_finish_and_acknowledges_it(
    tmp_path: Path, node_id: str, broker: Broker
) -> None:
    agent = Agent(settings_for(tmp_path, node_id), broker, stop_grace=10)
    await agent.start()
    await create_stubborn_server(agent, "srv-slow", tmp_path)
    await agent.servers.power("srv-slow", "start")
    slow = power(CommandType.SERVER_STOP, "srv-slow", signal="SIGTERM", grace=1)
    await send(broker, node_id, slow)
    await asyncio.sleep(0.3)  # taken and running
    await agent.stop()
    entries = await broker.read({keys.node_events_stream(node_id): "0"}, count=1000)
    results = results_for([Event.from_fields(m.fields) for _, m in entries], slow.id)
    assert [r.status for r in results] == [CommandStatus.COMPLETED]
    assert await pending(broker, node_id) == 0


async def test_a_failed_acknowledgement_leaves_the_entry_pending_and_the_lane_going() -> None:
    broker = MemoryBroker()
    stream = keys.node_commands_stream("n1")
    first = await broker.append(stream, {"payload": '{"serverId":"srv-a"}'})
    await broker.append(stream, {"payload": '{"serverId":"srv-a"}'})
    seen: list[str] = []

    async def handle(message: StreamMessage) -> None:
        seen.append(message.id)
        if message.id == first:
            await broker.close()  # the broker goes away between the outcome and the ack

    consumer = command_consumer(broker, "n1", handle, max_concurrent=4, block_ms=10)
    await consumer.run_once()
    await eventually(lambda: len(seen) == 2 and consumer.in_hand == 0)
    assert seen[0] == first and consumer.busy == 0


async def test_the_loop_takes_no_more_entries_than_it_may_hold() -> None:
    broker = MemoryBroker()
    stream = keys.node_commands_stream("n1")
    for i in range(8):
        await broker.append(stream, {"payload": f'{{"serverId":"srv-{i}"}}'})
    release = asyncio.Event()
    handled: list[str] = []

    async def handle(message: StreamMessage) -> None:
        await release.wait()
        handled.append(message.id)

    consumer = command_consumer(broker, "n1", handle, max_concurrent=2, max_in_hand=3)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.busy == 2)
        await asyncio.sleep(0.1)
        assert consumer.in_hand == 3
        assert await broker.pending_count(stream, keys.COMMANDS_GROUP) == 3  # 5 left unread
        release.set()
        await eventually(lambda: len(handled) == 8)
    finally:
        consumer.stop()
        await task
    assert await broker.pending_count(stream, keys.COMMANDS_GROUP) == 0
    await broker.close()
