"""The process runtime: servers as local child processes, for machines without Docker.

Each server runs its startup command in its own directory and process group, with stdin
piped for console input and stdout/stderr split into lines. Memory and process-count limits
are applied as RLIMITs by `launcher.py`; there is no CPU cap, network or file isolation, so
this runtime suits a single trusted machine (the embedded default), not shared hosting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal as signals
import sys
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import psutil

from stellarstack.daemon.runtime import launcher
from stellarstack.daemon.runtime.base import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    OutputLine,
    OutputStream,
    ResourceStats,
    Runtime,
    StreamName,
)
from stellarstack.daemon.runtime.errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    InvalidSpecError,
)
from stellarstack.daemon.runtime.output import LineSplitter
from stellarstack.logs import get_logger

__all__ = ["HISTORY_LINES", "ProcessRuntime", "parse_signal"]

log = get_logger(__name__)

HISTORY_LINES = 1000
"""Lines of output kept per server for `logs()`."""

_SUBSCRIBER_BACKLOG = 10_000
_READ_CHUNK = 64 * 1024
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_Item = OutputLine | None


def parse_signal(value: str | int) -> signals.Signals:
    """`SIGTERM`, `TERM` or `15` as a signal; InvalidSpecError for anything else."""
    try:
        if isinstance(value, int) or value.isdigit():
            return signals.Signals(int(value))
        name = value.upper()
        return signals.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError) as exc:
        raise InvalidSpecError(f"unknown signal {value!r}") from exc


class _QueueOutput(OutputStream):
    """Lines delivered by a server's output pumps into one subscriber queue."""

    def __init__(self, queue: asyncio.Queue[_Item], subscribers: set[asyncio.Queue[_Item]]):
        self._queue = queue
        self._subscribers = subscribers
        self._closed = False

    async def __anext__(self) -> OutputLine:
        if self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Unsubscribe; lines already queued are dropped."""
        self._closed = True
        self._subscribers.discard(self._queue)


@dataclass(eq=False)
class _Server:
    """What the runtime knows about one server."""

    spec: ContainerSpec
    status: ContainerStatus = ContainerStatus.CREATED
    process: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    history: deque[OutputLine] = field(default_factory=lambda: deque(maxlen=HISTORY_LINES))
    subscribers: set[asyncio.Queue[_Item]] = field(default_factory=set)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    supervisor: asyncio.Task[None] | None = None
    probes: dict[int, psutil.Process] = field(default_factory=dict)
    start_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.stopped.set()

    @property
    def running(self) -> bool:
        """True while the main process lives."""
        return self.process is not None

    def publish(self, line: OutputLine) -> None:
        """Keep a line in the history and hand it to every subscriber."""
        self.history.append(line)
        for queue in self.subscribers:
            if queue.full():  # a reader that fell far behind loses its oldest lines
                queue.get_nowait()
            queue.put_nowait(line)

    def end_subscriptions(self) -> None:
        """Tell every subscriber the output has ended."""
        for queue in self.subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
        self.subscribers.clear()

    def state(self) -> ContainerState:
        """A snapshot for callers."""
        return ContainerState(
            server_id=self.spec.server_id,
            status=self.status,
            container_id=str(self.process.pid) if self.process else "",
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class ProcessRuntime(Runtime):
    """Servers as child processes of the daemon; they stop when the runtime closes."""

    name: ClassVar[str] = "process"

    def __init__(self, *, close_grace: float = 10.0) -> None:
        self._servers: dict[str, _Server] = {}
        self._close_grace = close_grace

    def _get(self, server_id: str) -> _Server:
        try:
            return self._servers[server_id]
        except KeyError:
            raise ContainerNotFoundError(f"{server_id}: no such server") from None

    async def ping(self) -> None:
        """Always answers: the runtime is this process."""

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Register the server; its command runs in `volume_dir` (created if missing)."""
        if not spec.command:
            raise InvalidSpecError("the process runtime needs a startup command")
        if spec.volume_dir is None:
            raise InvalidSpecError("the process runtime needs a volume_dir to run in")
        if spec.server_id in self._servers:
            raise ContainerConflictError(f"{spec.server_id}: already exists")
        await asyncio.to_thread(spec.volume_dir.mkdir, parents=True, exist_ok=True)
        server = self._servers[spec.server_id] = _Server(spec)
        return server.state()

    async def start(self, server_id: str) -> None:
        """Run the startup command in a new process group."""
        server = self._get(server_id)
        async with server.start_lock:
            if server.running:
                raise ContainerConflictError(f"{server_id}: already running")
            env = _environment(server.spec)
            argv = _argv(server.spec, env)
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=server.spec.volume_dir,
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ContainerRuntimeError(f"{server_id}: cannot start: {exc}") from exc
            server.process, server.status = process, ContainerStatus.RUNNING
            server.exit_code, server.finished_at = None, None
            server.started_at = datetime.now(UTC)
            server.probes.clear()
            server.stopped.clear()
            server.supervisor = asyncio.create_task(
                self._supervise(server, process), name=f"process-runtime:{server_id}"
            )
        log.info("runtime.process_started", server_id=server_id, pid=process.pid)

    async def _supervise(self, server: _Server, process: asyncio.subprocess.Process) -> None:
        """Pump output while the process lives, then record how it ended."""
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(_pump(server, process.stdout, "stdout")),
            asyncio.create_task(_pump(server, process.stderr, "stderr")),
        ]
        try:
            code = await process.wait()
            # The server is over when its main process is; leftovers of its group go too
            # (as in a container), which also closes the pipes they inherited.
            _signal_group(process, signals.SIGKILL)
            _, pending = await asyncio.wait(pumps, timeout=1.0)
            for task in pending:
                task.cancel()
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
        server.exit_code = 128 - code if code < 0 else code
        server.process, server.status = None, ContainerStatus.EXITED
        server.finished_at = datetime.now(UTC)
        server.end_subscriptions()
        server.stopped.set()
        log.info("runtime.process_exited", server_id=server.spec.server_id, code=server.exit_code)

    async def stop(
        self, server_id: str, *, signal: str = "SIGTERM", grace: float = 30.0
    ) -> ContainerState:
        """Signal the process group, wait up to `grace` seconds, then SIGKILL it."""
        server = self._get(server_id)
        sig = parse_signal(signal)
        if server.process is not None:
            _signal_group(server.process, sig)
            try:
                async with asyncio.timeout(grace):
                    await server.stopped.wait()
            except TimeoutError:
                if server.process is not None:
                    _signal_group(server.process, signals.SIGKILL)
                await server.stopped.wait()
        return server.state()

    async def kill(self, server_id: str, *, signal: str = "SIGKILL") -> None:
        """Signal the whole process group now."""
        server = self._get(server_id)
        sig = parse_signal(signal)
        if server.process is None:
            raise ContainerConflictError(f"{server_id}: not running")
        _signal_group(server.process, sig)

    async def remove(self, server_id: str) -> None:
        """Kill the process if it runs and forget the server."""
        server = self._get(server_id)
        if server.process is not None:
            _signal_group(server.process, signals.SIGKILL)
        await server.stopped.wait()
        server.end_subscriptions()
        self._servers.pop(server_id, None)

    async def status(self, server_id: str) -> ContainerState:
        """The server's current state."""
        return self._get(server_id).state()

    async def wait(self, server_id: str) -> ContainerState:
        """Wait until the process is not running."""
        server = self._get(server_id)
        await server.stopped.wait()
        return server.state()

    async def attach(self, server_id: str) -> OutputStream:
        """Subscribe to output lines of the current (or next) run."""
        server = self._get(server_id)
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=_SUBSCRIBER_BACKLOG)
        server.subscribers.add(queue)
        return _QueueOutput(queue, server.subscribers)

    async def logs(self, server_id: str, *, tail: int = 100) -> list[OutputLine]:
        """The last `tail` lines kept in memory (at most HISTORY_LINES)."""
        history = self._get(server_id).history
        return list(history)[-tail:] if tail > 0 else []

    async def send_input(self, server_id: str, data: str) -> None:
        """Write to the process's stdin."""
        server = self._get(server_id)
        process = server.process
        if process is None or process.stdin is None:
            raise ContainerConflictError(f"{server_id}: not running")
        try:
            process.stdin.write(data.encode())
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ContainerConflictError(f"{server_id}: stdin is closed") from exc

    async def stats(self, server_id: str) -> ResourceStats:
        """CPU and memory of the process and its children (cpu is 0 on the first sample)."""
        server = self._get(server_id)
        if server.process is None:
            raise ContainerConflictError(f"{server_id}: not running")
        return _sample(server, server.process.pid)

    async def list_managed(self) -> list[ContainerState]:
        """Every server registered with this runtime."""
        return [server.state() for server in self._servers.values()]

    async def close(self) -> None:
        """Stop every running server (SIGTERM, then SIGKILL after `close_grace`)."""
        running = [sid for sid, server in self._servers.items() if server.running]
        await asyncio.gather(*(self.stop(sid, grace=self._close_grace) for sid in running))
        supervisors = [s.supervisor for s in self._servers.values() if s.supervisor]
        await asyncio.gather(*supervisors, return_exceptions=True)
        for server in self._servers.values():
            server.end_subscriptions()


async def _pump(server: _Server, reader: asyncio.StreamReader, name: StreamName) -> None:
    """Read one pipe until EOF, publishing complete lines."""
    splitter = LineSplitter()
    try:
        while chunk := await reader.read(_READ_CHUNK):
            for text in splitter.feed(chunk):
                server.publish(OutputLine(name, text))
    finally:
        for text in splitter.flush():
            server.publish(OutputLine(name, text))


def _signal_group(process: asyncio.subprocess.Process, sig: signals.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _environment(spec: ContainerSpec) -> dict[str, str]:
    """A small, explicit environment: the daemon's own variables (tokens) never leak."""
    assert spec.volume_dir is not None
    env = {"PATH": os.environ.get("PATH", _DEFAULT_PATH), "HOME": str(spec.volume_dir)}
    env["LANG"] = "C.UTF-8"
    env.update(spec.env)
    return env


def _argv(spec: ContainerSpec, env: dict[str, str]) -> list[str]:
    """The resolved command, wrapped by the launcher when there are limits to apply."""
    assert spec.volume_dir is not None
    program = spec.command[0]
    if "/" in program:
        candidate = Path(program) if Path(program).is_absolute() else spec.volume_dir / program
        found = str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    else:
        found = shutil.which(program, path=env["PATH"])
    if found is None:
        raise InvalidSpecError(f"{program!r} is not an executable in PATH or the server directory")
    command = [found, *spec.command[1:]]
    options: list[str] = []
    if spec.memory_limit is not None:
        options += ["--as", str(spec.memory_limit)]
    if spec.pids_limit is not None:
        options += ["--nproc", str(spec.pids_limit)]
    if not options or os.name != "posix":
        return command
    return [sys.executable, "-I", "-S", launcher.__file__, *options, "--", *command]


def _sample(server: _Server, pid: int) -> ResourceStats:
    """Sum cpu and memory over the process tree, keeping psutil handles for cpu deltas."""
    try:
        root = server.probes.get(pid) or psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error as exc:
        raise ContainerConflictError(f"{server.spec.server_id}: process is gone") from exc
    cpu, memory, seen = 0.0, 0, set()
    for proc in tree:
        probe = server.probes.setdefault(proc.pid, proc)
        with contextlib.suppress(psutil.Error):
            cpu += probe.cpu_percent(None)
            memory += probe.memory_info().rss
            seen.add(proc.pid)
    for stale in server.probes.keys() - seen:
        del server.probes[stale]
    return ResourceStats(
        cpu_percent=cpu,
        memory_bytes=memory,
        memory_limit_bytes=server.spec.memory_limit or 0,
        pids=len(seen),
    )
