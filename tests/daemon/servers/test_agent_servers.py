"""Server commands through a real Agent: create over the wire, hostile specs, reattach."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.runtime import DockerRuntime
from stellarstack.protocol import Command, CommandResult, CommandStatus, EventType, keys
from stellarstack.protocol.events import Event, ServerStatusChange
from stellarstack.settings import DaemonSettings
from tests.daemon.waiting import events_until
from tests.support.game_image import GAME_IMAGE, GAME_SCRIPT_PATH
from tests.support.services import DockerEngine, free_port


@pytest.fixture
async def engine_runtime(
    docker_engine: DockerEngine, game_image: str
) -> AsyncIterator[DockerRuntime]:
    """A Docker runtime shared by successive agents; its containers are removed at the end."""
    runtime = DockerRuntime(docker_engine.host, node_id=f"test-{uuid.uuid4().hex[:8]}")
    yield runtime
    for state in await runtime.list_managed():
        await runtime.remove(state.server_id)
    await runtime.close()


def wire_spec(server_id: str, **overrides: Any) -> dict[str, Any]:
    """A server.create payload for the test game, as the panel sends it."""
    return {
        "serverId": server_id,
        "deploymentId": "dep-1",
        "image": GAME_IMAGE,
        "binaries": ["sh"],
        "command": ["sh", GAME_SCRIPT_PATH],
        "limits": {"memoryMb": 128, "diskMb": 256, "pids": 64},
        "ports": [{"ip": "127.0.0.1", "port": free_port(), "primary": True}],
        "stop": {"command": "stop", "timeout": 10},
        "ready": {"type": "log", "pattern": "Server ready on port", "timeout": 30},
    } | overrides


async def run(broker: MemoryBroker, node_id: str, command: Command) -> CommandResult:
    """Send a command the way the panel does and wait for its result."""
    stream = keys.node_events_stream(node_id)
    await broker.append(keys.node_commands_stream(node_id), command.to_fields())

    def results(events: list[Event]) -> list[CommandResult]:
        return [
            r
            for e in events
            if e.type == EventType.COMMAND_RESULT
            and (r := e.data_as(CommandResult)).command_id == command.id
        ]

    events = await events_until(broker, stream, lambda evs: bool(results(evs)), seconds=60)
    return results(events)[0]


async def statuses(broker: MemoryBroker, node_id: str, server_id: str) -> list[str]:
    """Statuses published about a server."""
    entries = await broker.read({keys.node_events_stream(node_id): "0"}, count=100_000)
    events = [Event.from_fields(m.fields) for _, m in entries]
    return [
        e.data_as(ServerStatusChange).status.value
        for e in events
        if e.type == EventType.SERVER_STATUS and e.server_id == server_id
    ]


async def test_create_over_the_wire_then_a_new_agent_reattaches(
    engine_runtime: DockerRuntime, tmp_path: Path
) -> None:
    node_id, server_id = f"node-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:12]}"
    broker = MemoryBroker()
    settings = DaemonSettings(data_dir=tmp_path / "daemon", node_id=node_id, runtime="docker")
    first = Agent(settings, broker, runtime=engine_runtime)
    await first.start()
    try:
        created = await run(broker, node_id, Command.create("server.create", wire_spec(server_id)))
        assert created.status is CommandStatus.COMPLETED, created.error
        assert created.result["status"] == "running"
    finally:
        await first.stop()
    assert (await engine_runtime.status(server_id)).running  # the daemon left it running
    second = Agent(settings, broker, runtime=engine_runtime)
    await second.start()
    try:
        assert (await statuses(broker, node_id, server_id))[-1] == "running"
        stop = Command.create("server.stop", {"serverId": server_id})
        stopped = await run(broker, node_id, stop)
        assert stopped.status is CommandStatus.COMPLETED and stopped.result["exitCode"] == 0
        delete = Command.create("server.delete", {"serverId": server_id})
        assert (await run(broker, node_id, delete)).status is CommandStatus.COMPLETED
    finally:
        await second.stop()
    assert await engine_runtime.list_managed() == []
    await broker.close()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"serverId": "../../etc"}, "invalid server.create payload"),
        ({"serverId": "/abs"}, "invalid server.create payload"),
        ({"env": {"BAD-NAME": "x"}}, "invalid environment variable name"),
        ({"env": {"OK": "nul\u0000byte"}}, "NUL"),
        ({"command": ["sh", "-c", "echo \u0000"]}, "NUL"),
        ({"mountPath": "/home/container:/etc:rw"}, "mount path"),
        ({"mountPath": "/home/../../etc"}, "mount path"),
        ({"mountPath": "relative"}, "invalid server.create payload"),
        ({"image": "Evil Image; rm -rf /"}, "invalid server.create payload"),
        ({"ports": [{"ip": "not-an-ip", "port": 25565}]}, "host_ip must be an IP address"),
        ({"ports": [{"ip": "127.0.0.1", "port": 70000}]}, "invalid server.create payload"),
        ({"limits": {"memoryMb": 0, "diskMb": 256}}, "invalid server.create payload"),
        ({"stop": {"signal": "SIGTERM; reboot"}}, "invalid server.create payload"),
        (
            {"configFiles": [{"path": "../x", "parser": "json", "set": {"a": 1}}]},
            "inside the server directory",
        ),
        ({"binaries": []}, "needs Docker"),
        ({"binaries": ["../../bin/sh"]}, "plain names"),
        ({"binaries": ["sh", "no-such-game-binary"]}, "needs no-such-game-binary on this node"),
    ],
)
async def test_hostile_specs_fail_with_a_reason_and_leave_nothing(
    tmp_path: Path, overrides: dict[str, Any], error: str
) -> None:
    node_id, server_id = f"node-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:12]}"
    broker = MemoryBroker()
    settings = DaemonSettings(data_dir=tmp_path / "daemon", node_id=node_id, runtime="process")
    agent = Agent(settings, broker)
    await agent.start()
    try:
        command = Command.create("server.create", wire_spec(server_id, **overrides))
        result = await run(broker, node_id, command)
        assert result.status is CommandStatus.FAILED
        assert result.error is not None and error in result.error, result.error
        assert await agent.runtime.list_managed() == []
    finally:
        await agent.stop()
    leftovers = [p for p in (tmp_path / "daemon" / "volumes").glob("*")]
    assert leftovers == []
    assert list((tmp_path / "daemon").glob("servers/*.json")) == []
    await broker.close()
