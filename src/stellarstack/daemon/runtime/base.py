"""The Runtime seam: run a game server's container (Docker) or process, by server id.

Usage::

    runtime = await detect_runtime("auto")
    await runtime.create(ContainerSpec(server_id="srv-1", image="…", command=("./start.sh",),
                                       volume_dir=Path("/srv/srv-1"), memory_limit=2 << 30))
    async with await runtime.attach("srv-1") as output:
        await runtime.start("srv-1")
        async for line in output:
            ...                                  # OutputLine(stream="stdout", text="…")
    await runtime.stop("srv-1", signal="SIGTERM", grace=30)   # then SIGKILL if still up
    await runtime.remove("srv-1")
"""

from __future__ import annotations

import abc
import enum
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self

from stellarstack.daemon.runtime.errors import InvalidSpecError

__all__ = [
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "OutputLine",
    "OutputStream",
    "PortBinding",
    "PullProgress",
    "ResourceStats",
    "Runtime",
    "StreamName",
]

StreamName = Literal["stdout", "stderr"]

PullProgress = Callable[[float, str], Awaitable[None]]
"""Called while an image is pulled: fraction done (0-1) and a readable message."""

_SERVER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_ARG_BYTES = 128 * 1024 - 1
"""Linux refuses any one argument or environment string longer than this (MAX_ARG_STRLEN)."""
_MAX_SPEC_BYTES = 1 << 20
"""Command and environment together stay well below the kernel's exec limit."""


@dataclass(frozen=True, slots=True)
class PortBinding:
    """Publish `container_port` (default: the same number) on `host_ip:host_port`."""

    host_ip: str
    host_port: int
    container_port: int | None = None
    protocol: Literal["tcp", "udp"] = "tcp"

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.host_ip)
        except ValueError as exc:
            raise InvalidSpecError(f"host_ip must be an IP address, not {self.host_ip!r}") from exc
        for port in (self.host_port, self.target_port):
            if not 1 <= port <= 65535:
                raise InvalidSpecError(f"port {port} is outside 1-65535")
        if self.protocol not in ("tcp", "udp"):
            raise InvalidSpecError(f"protocol must be tcp or udp, not {self.protocol!r}")

    @property
    def target_port(self) -> int:
        """The port inside the container."""
        return self.host_port if self.container_port is None else self.container_port


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What to run for one server and within which limits (bytes, cores, processes)."""

    server_id: str
    image: str = ""
    command: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    memory_limit: int | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None
    ports: tuple[PortBinding, ...] = ()
    volume_dir: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = "/home/container"
    user: str | None = None

    def __post_init__(self) -> None:
        if _SERVER_ID.fullmatch(self.server_id) is None:
            raise InvalidSpecError(f"invalid server id {self.server_id!r}")
        for name in self.env:
            if _ENV_NAME.fullmatch(name) is None:
                raise InvalidSpecError(f"invalid environment variable name {name!r}")
        strings = [*self.command, *(f"{k}={v}" for k, v in self.env.items())]
        if any("\0" in part for part in strings):
            raise InvalidSpecError("command and environment must not contain NUL bytes")
        sizes = [len(part.encode()) for part in strings]
        if any(size > _MAX_ARG_BYTES for size in sizes) or sum(sizes) > _MAX_SPEC_BYTES:
            raise InvalidSpecError(
                "command and environment are too large (at most 128 KiB each, 1 MiB in all)"
            )
        for limit, value in (("memory_limit", self.memory_limit), ("pids_limit", self.pids_limit)):
            if value is not None and value <= 0:
                raise InvalidSpecError(f"{limit} must be positive")
        if self.cpu_limit is not None and not self.cpu_limit > 0:
            raise InvalidSpecError("cpu_limit must be positive")
        if self.volume_dir is not None and not self.volume_dir.is_absolute():
            raise InvalidSpecError("volume_dir must be an absolute path")


class ContainerStatus(enum.StrEnum):
    """What the runtime reports about a container or process."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ContainerState:
    """A snapshot of one managed container or process."""

    server_id: str
    status: ContainerStatus
    container_id: str = ""
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        """True while the server's main process is alive."""
        return self.status in (ContainerStatus.RUNNING, ContainerStatus.RESTARTING)


@dataclass(frozen=True, slots=True)
class ResourceStats:
    """Resource use of one server: cpu in percent of one core, sizes in bytes."""

    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int
    network_rx_bytes: int = 0
    network_tx_bytes: int = 0
    pids: int = 0
    started_at: datetime | None = None

    @property
    def uptime(self) -> float | None:
        """Seconds since the server's process started, when known."""
        if self.started_at is None:
            return None
        return max((datetime.now(UTC) - self.started_at).total_seconds(), 0.0)


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line of console output, without its line ending."""

    stream: StreamName
    text: str


class OutputStream(abc.ABC):
    """Live output lines of a server; ends when its process exits. Close it when done."""

    def __aiter__(self) -> AsyncIterator[OutputLine]:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> OutputLine:
        """The next line; StopAsyncIteration when the process has exited."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop receiving output and release the connection."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Runtime(abc.ABC):
    """Runs servers as containers or processes; every method is keyed by server id."""

    name: ClassVar[str]

    @abc.abstractmethod
    async def ping(self) -> None:
        """Check the engine answers; raise RuntimeUnavailableError otherwise."""

    async def pull(self, image: str, on_progress: PullProgress | None = None) -> None:
        """Make `image` available locally (a no-op when present, and on the process runtime).

        Raise ImagePullError with the engine's reason when it cannot be had.
        """
        raise NotImplementedError

    async def run_once(
        self,
        spec: ContainerSpec,
        *,
        timeout: float,  # noqa: ASYNC109 - the install's own budget, enforced inside
        on_output: Callable[[OutputLine], Awaitable[None]] | None = None,
    ) -> int:
        """Run a one-off container (an install script) to its end, remove it, return its exit code.

        Its output goes to `on_output` line by line. Past `timeout` seconds it is killed and
        removed, and TimeoutError raised. The server's own container is not touched.
        """
        raise NotImplementedError

    @abc.abstractmethod
    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Create (not start) the server's container; ContainerConflictError if it exists."""

    @abc.abstractmethod
    async def start(self, server_id: str) -> None:
        """Start the server's main process."""

    @abc.abstractmethod
    async def stop(
        self, server_id: str, *, signal: str = "SIGTERM", grace: float = 30.0
    ) -> ContainerState:
        """Send `signal`, wait up to `grace` seconds, then kill; a stopped server is a no-op."""

    @abc.abstractmethod
    async def kill(self, server_id: str, *, signal: str = "SIGKILL") -> None:
        """Send a signal now; ContainerConflictError if the server is not running."""

    @abc.abstractmethod
    async def remove(self, server_id: str) -> None:
        """Kill if needed and forget the container (the server's files stay)."""

    @abc.abstractmethod
    async def status(self, server_id: str) -> ContainerState:
        """The current state of the server's container."""

    @abc.abstractmethod
    async def wait(self, server_id: str) -> ContainerState:
        """Wait until the server's process is not running (bound it with asyncio.timeout)."""

    @abc.abstractmethod
    async def attach(self, server_id: str) -> OutputStream:
        """Subscribe to output from now on (of the current run, or the next one if stopped)."""

    @abc.abstractmethod
    async def logs(self, server_id: str, *, tail: int = 100) -> list[OutputLine]:
        """The last `tail` lines of output."""

    @abc.abstractmethod
    async def send_input(self, server_id: str, data: str) -> None:
        """Write `data` as-is to the server's stdin (add the newline yourself)."""

    @abc.abstractmethod
    async def stats(self, server_id: str) -> ResourceStats:
        """Current resource use of a running server."""

    @abc.abstractmethod
    async def list_managed(self) -> list[ContainerState]:
        """Every container this runtime manages."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections (the Docker runtime leaves containers running)."""
