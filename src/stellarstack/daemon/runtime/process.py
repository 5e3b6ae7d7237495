"""The process runtime: servers as local processes, for machines without Docker.

Each server's startup command runs in its own directory under a pseudo-terminal, owned by a
small detached supervisor (`supervisor.py`) that outlives the daemon. The runtime keeps one
directory per server under its state dir (`process_files.py`), so a daemon started later
finds running servers again (`list_managed`, `status`) and can attach, send input, stop,
kill, wait and sample them. Memory and process-count limits are RLIMITs (`launcher.py`);
there is no CPU cap, network or file isolation: this runtime suits a single trusted machine
(the embedded default), not shared hosting.

Without a `state_dir` the runtime is ephemeral: it uses a private temporary directory and
stops its servers on `close()`. With one, `close()` leaves them running for the next daemon.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal as signals
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

import psutil

from stellarstack.daemon.runtime import supervisor
from stellarstack.daemon.runtime.base import (
    ContainerSpec,
    ContainerState,
    OutputLine,
    OutputStream,
    PullProgress,
    ResourceStats,
    Runtime,
)
from stellarstack.daemon.runtime.errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    InvalidSpecError,
)
from stellarstack.daemon.runtime.install import check_timeout
from stellarstack.daemon.runtime.output import LineSplitter
from stellarstack.daemon.runtime.process_exec import (
    command_argv,
    environment,
    parse_signal,
    run_command,
    sample_tree,
    signal_group,
)
from stellarstack.daemon.runtime.process_files import (
    LogFollower,
    OutputBell,
    ServerFiles,
    is_server_id,
)
from stellarstack.daemon.runtime.process_state import ProcessServer, leads_its_session, pause
from stellarstack.daemon.runtime.subscribers import QueueOutput
from stellarstack.logs import get_logger

__all__ = ["LOG_CAP", "ProcessRuntime", "parse_signal"]

log = get_logger(__name__)

LOG_CAP = 8 << 20
"""Bytes of output kept per server on disk (twice this with the rotated file)."""

_LIVENESS_SECONDS = 1.0
"""Check the supervisor's pid this often while idle (it writes exit.json when all is well)."""
_FAST_POLL = 0.005
_FAST_SECONDS = 0.25
"""Without a bell: after output, input or a signal, poll every _FAST_POLL for this long."""
_BELL_BACKUP_POLL = 0.25
_START_SECONDS = 10.0
_INPUT_SECONDS = 5.0


class ProcessRuntime(Runtime):
    """Servers as supervised local processes that survive a daemon restart (with a state dir)."""

    name: ClassVar[str] = "process"

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        close_grace: float = 10.0,
        log_cap: int = LOG_CAP,
        poll_interval: float = 0.05,
    ) -> None:
        self._ephemeral = state_dir is None
        if state_dir is None:
            state_dir = Path(tempfile.mkdtemp(prefix="stellarstack-processes-"))
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._state_dir = state_dir.resolve()
        self._close_grace = close_grace
        self._log_cap = log_cap
        self._poll = poll_interval
        self._servers: dict[str, ProcessServer] = {}
        self._discover()

    @property
    def state_dir(self) -> Path:
        """Where the servers' records live."""
        return self._state_dir

    def _discover(self) -> None:
        """Load every server recorded in the state dir that this instance does not know yet."""
        for entry in sorted(self._state_dir.iterdir()):
            if entry.name in self._servers or not is_server_id(entry.name) or not entry.is_dir():
                continue
            files = ServerFiles(entry)
            try:
                spec = files.read_spec()
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("runtime.process_record_unreadable", path=str(entry), error=str(exc))
                continue
            server = ProcessServer(spec, files)
            server.refresh()
            self._servers[entry.name] = server

    def _get(self, server_id: str) -> ProcessServer:
        server = self._servers.get(server_id)
        if server is None and is_server_id(server_id) and (self._state_dir / server_id).is_dir():
            self._discover()
            server = self._servers.get(server_id)
        if server is None:
            raise ContainerNotFoundError(f"{server_id}: no such server")
        if server.running and server.watcher is None:
            self._watch(server, LogFollower(server.files.log))
        return server

    async def ping(self) -> None:
        """Always answers: the runtime is this machine."""

    async def pull(self, image: str, on_progress: PullProgress | None = None) -> None:
        """Nothing to pull: processes run what is installed in the server directory."""

    async def run_once(
        self,
        spec: ContainerSpec,
        *,
        timeout: float,  # noqa: ASYNC109 - the install's own budget, enforced inside
        on_output: Callable[[OutputLine], Awaitable[None]] | None = None,
    ) -> int:
        """Run the spec's command in its directory to its end, with its limits; kill on timeout."""
        check_timeout(timeout)
        if not spec.command or spec.volume_dir is None:
            raise InvalidSpecError("an install step needs a command and the server directory")
        await asyncio.to_thread(spec.volume_dir.mkdir, parents=True, exist_ok=True)
        log.info("runtime.install_started", server_id=spec.server_id, runtime=self.name)
        code = await run_command(spec, timeout=timeout, on_output=on_output)
        log.info("runtime.install_finished", server_id=spec.server_id, code=code)
        return code

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Record the server; its command runs in `volume_dir` (created if missing)."""
        if not spec.command:
            raise InvalidSpecError("the process runtime needs a startup command")
        if spec.volume_dir is None:
            raise InvalidSpecError("the process runtime needs a volume_dir to run in")
        files = ServerFiles(self._state_dir / spec.server_id)
        if spec.server_id in self._servers or files.directory.exists():
            raise ContainerConflictError(f"{spec.server_id}: already exists")
        await asyncio.to_thread(spec.volume_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(files.write_spec, spec)
        server = self._servers[spec.server_id] = ProcessServer(spec, files)
        server.stopped.set()
        return server.state()

    async def start(self, server_id: str) -> None:
        """Start the command under a detached supervisor and a pseudo-terminal."""
        server = self._get(server_id)
        async with server.lock:
            if server.running:
                raise ContainerConflictError(f"{server_id}: already running")
            if server.watcher is not None:
                await server.watcher
            spec = server.spec
            env = environment(spec)
            launch = {
                "argv": command_argv(spec, env),
                "cwd": str(spec.volume_dir),
                "env": env,
                "log_cap": self._log_cap,
            }
            server.files.write_launch(launch)
            follower = LogFollower(server.files.log)
            try:
                await self._spawn(server)
            except BaseException:
                follower.close()
                raise
            server.probes.clear()
            self._watch(server, follower)
        log.info("runtime.process_started", server_id=server_id, pid=server.record.pid)

    async def _spawn(self, server: ProcessServer) -> None:
        """Run the supervisor (it detaches) and wait for it to report the server's pid."""
        argv = [sys.executable, "-I", "-S", supervisor.__file__, str(server.files.directory)]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
            await process.wait()
        except OSError as exc:
            raise ContainerRuntimeError(f"{server.spec.server_id}: cannot start: {exc}") from exc
        try:
            async with asyncio.timeout(_START_SECONDS):
                # The supervisor, another process, writes the record: poll for it.
                while (record := server.files.record()).pid is None and not record.ended:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise ContainerRuntimeError(
                f"{server.spec.server_id}: the supervisor did not start "
                f"({server.files.supervisor_errors() or 'no error recorded'})"
            ) from None
        if record.pid is None:
            raise ContainerRuntimeError(
                f"{server.spec.server_id}: cannot start: {server.files.supervisor_errors()}"
            )
        server.record, server.lost = record, False
        server.stopped.clear()

    def _watch(self, server: ProcessServer, follower: LogFollower) -> None:
        server.watcher = asyncio.create_task(
            self._follow(server, follower), name=f"process-runtime:{server.spec.server_id}"
        )

    async def _follow(self, server: ProcessServer, follower: LogFollower) -> None:
        """Publish output lines until the run ends, then record how it ended.

        The supervisor's bell wakes this loop as soon as the log grows (or the run ends), so
        output travels without polling delay; without a bell it polls the log instead.
        """
        loop = asyncio.get_running_loop()
        splitter = LineSplitter()
        bell = OutputBell(server.files.bell, server.wake.set)
        fast_until = loop.time() + _FAST_SECONDS  # a new run usually prints at once
        next_check = loop.time() + _LIVENESS_SECONDS
        try:
            while True:
                if data := follower.read():
                    server.subscribers.publish(splitter.feed(data))
                    fast_until = loop.time() + _FAST_SECONDS
                    await asyncio.sleep(0)  # readers take this chunk before the next
                    continue
                if server.files.has_ended():
                    while data := follower.read():
                        server.subscribers.publish(splitter.feed(data))
                    break
                if (now := loop.time()) >= next_check:
                    server.refresh()
                    if server.lost:
                        break
                    next_check = now + _LIVENESS_SECONDS
                if bell.ringing:  # the poll only backs up a bell another reader drained
                    await pause(server.wake, _BELL_BACKUP_POLL)
                elif await pause(server.wake, _FAST_POLL if now < fast_until else self._poll):
                    fast_until = loop.time() + _FAST_SECONDS
            server.subscribers.publish(splitter.flush())
            server.refresh()
        finally:
            bell.close()
            follower.close()
            server.watcher = None
        server.subscribers.end()
        server.stopped.set()
        state = server.state()
        log.info(
            "runtime.process_exited",
            server_id=server.spec.server_id,
            code=state.exit_code,
            status=str(state.status),
        )

    async def stop(
        self, server_id: str, *, signal: str = "SIGTERM", grace: float = 30.0
    ) -> ContainerState:
        """Signal the process group, wait up to `grace` seconds, then SIGKILL it."""
        server = self._get(server_id)
        sig = parse_signal(signal)
        if server.running:
            self._signal(server, sig)
            try:
                async with asyncio.timeout(grace):
                    await server.stopped.wait()
            except TimeoutError:
                self._signal(server, signals.SIGKILL)
                await server.stopped.wait()
        return server.state()

    def _signal(self, server: ProcessServer, sig: signals.Signals) -> None:
        if server.running and server.record.pid is not None:
            signal_group(server.record.pid, sig)
            server.wake.set()

    async def kill(self, server_id: str, *, signal: str = "SIGKILL") -> None:
        """Signal the whole process group now."""
        server = self._get(server_id)
        sig = parse_signal(signal)
        if not server.running:
            raise ContainerConflictError(f"{server_id}: not running")
        self._signal(server, sig)

    async def remove(self, server_id: str) -> None:
        """Kill the process if it runs and forget the server (its files stay)."""
        server = self._get(server_id)
        self._signal(server, signals.SIGKILL)
        pid = server.record.pid
        if server.lost and pid is not None and leads_its_session(pid):
            signal_group(pid, signals.SIGKILL)  # orphaned when its supervisor was killed
        await server.stopped.wait()
        server.subscribers.end()
        self._servers.pop(server_id, None)
        await asyncio.to_thread(shutil.rmtree, server.files.directory, True)

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
        return QueueOutput(self._get(server_id).subscribers)

    async def logs(self, server_id: str, *, tail: int = 100) -> list[OutputLine]:
        """The last `tail` lines of output kept on disk."""
        server = self._get(server_id)
        lines = await asyncio.to_thread(server.files.tail, tail)
        return [OutputLine("stdout", text) for text in lines]

    async def send_input(self, server_id: str, data: str) -> None:
        """Write to the server's terminal through its supervisor."""
        server = self._get(server_id)
        if not server.running:
            raise ContainerConflictError(f"{server_id}: not running")
        payload = data.encode()
        try:
            fd = os.open(server.files.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: nobody reads the FIFO any more
            raise ContainerConflictError(f"{server_id}: the console is closed") from exc
        try:
            async with asyncio.timeout(_INPUT_SECONDS):
                while payload:
                    try:
                        payload = payload[os.write(fd, payload) :]
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
        except TimeoutError:
            raise ContainerConflictError(f"{server_id}: the console does not take input") from None
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise ContainerRuntimeError(f"{server_id}: cannot write input: {exc}") from exc
            raise ContainerConflictError(f"{server_id}: the console is closed") from exc
        finally:
            os.close(fd)
            server.wake.set()

    async def stats(self, server_id: str) -> ResourceStats:
        """CPU, memory and processes of the server's tree (cpu is 0 on the first sample)."""
        server = self._get(server_id)
        pid = server.record.pid
        if not server.running or pid is None:
            raise ContainerConflictError(f"{server_id}: not running")
        try:
            cpu, memory, pids = sample_tree(pid, server.probes)
        except psutil.Error as exc:
            raise ContainerConflictError(f"{server_id}: process is gone") from exc
        return ResourceStats(
            cpu_percent=cpu,
            memory_bytes=memory,
            memory_limit_bytes=server.spec.memory_limit or 0,
            pids=pids,
            started_at=server.record.started_at,
        )

    async def list_managed(self) -> list[ContainerState]:
        """Every server recorded in the state dir (found again after a daemon restart)."""
        self._discover()
        return [self._get(server_id).state() for server_id in list(self._servers)]

    async def close(self) -> None:
        """Stop following output; an ephemeral runtime also stops its servers and files."""
        if self._ephemeral:
            running = [sid for sid, server in self._servers.items() if server.running]
            await asyncio.gather(*(self.stop(sid, grace=self._close_grace) for sid in running))
        watchers = [s.watcher for s in self._servers.values() if s.watcher is not None]
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for server in self._servers.values():
            server.subscribers.end()
        if self._ephemeral:
            await asyncio.to_thread(shutil.rmtree, self._state_dir, True)
