"""Fixtures for the daemon's game servers: the test game image, and a ServerManager per runtime.

`servers` runs a test once on real Docker (the `stellarstack-test/game` image) and once on
the process runtime (the same script run by the host's `sh`); `docker_servers` and
`process_servers` pin one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.console import ConsoleHub, ConsoleLimits
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import (
    ContainerNotFoundError,
    DockerRuntime,
    ProcessRuntime,
    Runtime,
)
from stellarstack.daemon.servers.manager import ServerManager
from stellarstack.daemon.servers.store import SpecStore
from stellarstack.protocol import keys
from stellarstack.protocol.events import (
    DeploymentProgress,
    Event,
    EventType,
    NodeAlert,
    ServerStatusChange,
)
from stellarstack.protocol.servers import ServerSpec
from tests.daemon.waiting import eventually
from tests.support.game_image import (
    GAME_IMAGE,
    GAME_SCRIPT_PATH,
    build_game_image,
    write_game_script,
)
from tests.support.services import DockerEngine, free_port, require

__all__ = ["Servers"]


@pytest.fixture(scope="session")
def game_image(docker_engine: DockerEngine) -> str:
    """The test game image, built once per session on the test engine."""
    problem = build_game_image(docker_engine.host)
    require(problem is None, problem or "")
    return GAME_IMAGE


@dataclass
class Servers:
    """A ServerManager on one runtime, its broker stream, and helpers to read what it said."""

    kind: str
    runtime: Runtime
    broker: MemoryBroker
    manager: ServerManager
    store: SpecStore
    consoles: ConsoleHub
    stream: str
    script: str
    install_image: str
    node_id: str
    made: list[str] = field(default_factory=list)

    def spec(self, server_id: str, **overrides: Any) -> ServerSpec:
        """A spec for the test game on a free loopback port (stop by command, ready by log)."""
        values: dict[str, Any] = {
            "serverId": server_id,
            "deploymentId": f"dep-{server_id}",
            "image": GAME_IMAGE,
            "binaries": ["sh"],
            "command": ["sh", self.script],
            "env": {"WORLD_NAME": "alpha"},
            "limits": {"memoryMb": 128, "diskMb": 256, "pids": 64, "cpu": 50},
            "ports": [{"ip": "127.0.0.1", "port": free_port(), "primary": True}],
            "stop": {"command": "stop", "timeout": 10},
            "ready": {"type": "log", "pattern": "Server ready on port", "timeout": 30},
            "crash": {"restart": True, "window": 60, "maxBackoff": 1},
        }
        self.made.append(server_id)
        return ServerSpec.model_validate(values | overrides)

    async def events(self) -> list[Event]:
        """Every event published so far."""
        entries = await self.broker.read({self.stream: "0"}, count=100_000)
        return [Event.from_fields(message.fields) for _, message in entries]

    async def statuses(self, server_id: str) -> list[ServerStatusChange]:
        """The status changes published about one server, in order."""
        return [
            e.data_as(ServerStatusChange)
            for e in await self.events()
            if e.type == EventType.SERVER_STATUS and e.server_id == server_id
        ]

    async def status_names(self, server_id: str) -> list[str]:
        """The statuses published about one server, as their names."""
        return [change.status.value for change in await self.statuses(server_id)]

    async def stages(self, server_id: str) -> list[DeploymentProgress]:
        """The deployment steps published about one server, in order."""
        return [
            e.data_as(DeploymentProgress)
            for e in await self.events()
            if e.type == EventType.DEPLOYMENT_PROGRESS and e.server_id == server_id
        ]

    async def alerts(self, server_id: str) -> list[NodeAlert]:
        """The alerts published about one server."""
        return [
            e.data_as(NodeAlert)
            for e in await self.events()
            if e.type == EventType.NODE_ALERT and e.server_id == server_id
        ]

    async def wait_status(self, server_id: str, status: str, *, count: int = 1) -> None:
        """Wait until `status` was published `count` times for the server."""

        async def seen() -> bool:
            return (await self.status_names(server_id)).count(status) >= count

        await eventually(seen, seconds=30)

    async def exists(self, server_id: str) -> bool:
        """True while the runtime has a container (or process entry) for the server."""
        try:
            await self.runtime.status(server_id)
        except ContainerNotFoundError:
            return False
        return True

    def new_manager(self) -> ServerManager:
        """Another manager over the same runtime and data (a restarted daemon)."""
        return ServerManager(
            self.runtime,
            self.store,
            EventPublisher(self.broker, self.node_id),
            self.consoles,
            stats_interval=0.2,
            disk_interval=0.5,
        )


async def _servers(kind: str, runtime: Runtime, tmp_path: Path, install_image: str) -> Servers:
    node_id = f"node-{uuid.uuid4().hex[:8]}"
    broker = MemoryBroker()
    store = SpecStore(tmp_path / "daemon")
    consoles = ConsoleHub(ConsoleLimits())
    consoles.bind(runtime)
    script = GAME_SCRIPT_PATH if kind == "docker" else str(write_game_script(tmp_path / "game"))
    manager = ServerManager(
        runtime,
        store,
        EventPublisher(broker, node_id),
        consoles,
        stats_interval=0.2,
        disk_interval=0.5,
    )
    return Servers(
        kind=kind,
        runtime=runtime,
        broker=broker,
        manager=manager,
        store=store,
        consoles=consoles,
        stream=keys.node_events_stream(node_id),
        script=script,
        install_image=install_image,
        node_id=node_id,
    )


async def _teardown(servers: Servers) -> None:
    await servers.manager.close()
    await servers.consoles.close()
    for state in await servers.runtime.list_managed():
        await servers.runtime.remove(state.server_id)
    await servers.runtime.close()
    await servers.broker.close()


@pytest.fixture
async def docker_servers(
    docker_engine: DockerEngine, game_image: str, tmp_path: Path
) -> AsyncIterator[Servers]:
    """A ServerManager on real Docker; every container it made is removed afterwards."""
    runtime = DockerRuntime(docker_engine.host, node_id=f"test-{uuid.uuid4().hex[:8]}")
    servers = await _servers("docker", runtime, tmp_path, docker_engine.image)
    yield servers
    await _teardown(servers)


@pytest.fixture
async def process_servers(tmp_path: Path) -> AsyncIterator[Servers]:
    """A ServerManager on the process runtime (the game script run by the host's sh)."""
    servers = await _servers("process", ProcessRuntime(close_grace=2.0), tmp_path, "unused")
    yield servers
    await _teardown(servers)


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker), "process"])
def servers(request: pytest.FixtureRequest) -> Servers:
    """The ServerManager on each runtime in turn."""
    value: Servers = request.getfixturevalue(f"{request.param}_servers")
    return value


@pytest.fixture
def server_id() -> str:
    """A server id no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"
