"""Power of one server: boot, graceful stop, kill, the exit watcher and crash restarts.

Status machine (published as `server.status` and shown to console viewers)::

    stopped ──start──▶ starting ──ready──▶ running ──stop──▶ stopping ──▶ stopped
                          │                   │
                          └──unexpected exit──┴──▶ crashed ──backoff──▶ starting …
                                                       └── crash loop: stays crashed + alert

A ready check that does not pass in time leaves the server RUNNING (its process lives, and a
slow first start of a big modpack is common) and sends a warning alert: stopping a server
that may be about to accept players would be worse than showing it a little early.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.runtime import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerState,
    OutputStream,
)
from stellarstack.daemon.servers.crash import CrashRecord, exit_reason
from stellarstack.daemon.servers.ready import wait_until_ready
from stellarstack.daemon.servers.reporter import Reporter
from stellarstack.daemon.servers.stats import DiskUsage, StatsLoop
from stellarstack.logs import get_logger
from stellarstack.protocol.events import ServerStatus
from stellarstack.protocol.servers import ServerSpec, StopMethod

__all__ = [
    "DEFAULT_STOP",
    "KILL_WAIT",
    "OOM_SETTLE",
    "PowerBusyError",
    "ServerEntry",
    "ServerPower",
]

log = get_logger(__name__)

DEFAULT_STOP = StopMethod()
"""How a server without a stored spec is stopped: SIGTERM, kill after 30 s."""
KILL_WAIT = 10.0
"""Seconds to wait for a killed server's process to be gone."""
OOM_SETTLE = 0.5
"""Seconds to let the engine record an OOM kill before an unexplained SIGKILL is reported."""


class PowerBusyError(CommandFailedError):
    """Another power action of the same server is still running."""


@dataclass(eq=False)
class ServerEntry:
    """What the daemon tracks about one server between commands."""

    server_id: str
    spec: ServerSpec | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expected_exit: bool = True
    crashes: CrashRecord = field(default_factory=CrashRecord)
    watcher: asyncio.Task[ContainerState | None] | None = None
    stats: asyncio.Task[None] | None = None
    restart: asyncio.Task[None] | None = None
    disk: DiskUsage | None = None

    @contextlib.asynccontextmanager
    async def power_action(self, name: str) -> AsyncIterator[None]:
        """Hold the server's power lock, or fail at once when another action holds it."""
        if self.lock.locked():
            raise PowerBusyError(
                f"another power action is in progress for server {self.server_id}; "
                f"try {name} again when it has finished"
            )
        async with self.lock:
            yield

    def cancel_restart(self) -> None:
        """Drop a pending crash restart (a person acted)."""
        if self.restart is not None and not self.restart.done():
            self.restart.cancel()
        self.restart = None

    def stop_stats(self) -> None:
        """Stop sampling the server."""
        if self.stats is not None:
            self.stats.cancel()
            self.stats = None

    def stop_watching(self) -> None:
        """Stop every task of this server (the daemon is closing, or the server is deleted)."""
        self.cancel_restart()
        self.stop_stats()
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None


class ServerPower:
    """Power actions on servers, reported through a Reporter; shared by every command."""

    def __init__(self, reporter: Reporter, *, stats_interval: float, disk_interval: float) -> None:
        self.reporter = reporter
        self.runtime = reporter.runtime
        self.stats_interval = stats_interval
        self.disk_interval = disk_interval
        self.volume_dir = reporter.store.volume_dir

    async def boot(self, entry: ServerEntry) -> ContainerState:
        """Start the server (console attached first) and wait for its ready check."""
        sid, spec = entry.server_id, entry.spec
        if spec is not None:
            await self._check_disk(entry, spec)
        await self.reporter.register_console(sid)
        probe = spec.ready if spec is not None else None
        output = await self.runtime.attach(sid) if probe and probe.type == "log" else None
        entry.expected_exit = False
        await self.reporter.status(sid, ServerStatus.STARTING)
        try:
            await self.runtime.start(sid)
        except BaseException:
            entry.expected_exit = True
            if output is not None:
                await output.aclose()
            await self.reporter.status(sid, ServerStatus.STOPPED)
            raise
        if spec is not None:
            entry.watcher = asyncio.create_task(self._watch(entry), name=f"servers:watch:{sid}")
            self._sample(entry)
        await self._await_ready(entry, output)
        await self.reporter.status(sid, ServerStatus.RUNNING)
        return await self.runtime.status(sid)

    async def _await_ready(self, entry: ServerEntry, output: OutputStream | None) -> None:
        spec = entry.spec
        try:
            if spec is None or spec.ready is None or entry.watcher is None:
                return
            probe = spec.ready
            ready = asyncio.create_task(wait_until_ready(probe, spec.ports, output))
            try:
                done, _ = await asyncio.wait(
                    {ready, entry.watcher},
                    timeout=probe.timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                ready.cancel()
                await asyncio.gather(ready, return_exceptions=True)
            if entry.watcher in done:
                state = entry.watcher.result()
                why = exit_reason(state) if state is not None else "it is gone"
                raise CommandFailedError(f"server {entry.server_id} exited while starting: {why}")
            if ready not in done:
                await self.reporter.alert(
                    entry.server_id,
                    f"server {entry.server_id} did not pass its {probe.type} ready check within "
                    f"{probe.timeout:g}s; it is running but may not accept players yet",
                )
        finally:
            if output is not None:
                await output.aclose()

    def _disk(self, entry: ServerEntry) -> DiskUsage:
        if entry.disk is None:
            entry.disk = DiskUsage(self.volume_dir(entry.server_id), self.disk_interval)
        return entry.disk

    async def _check_disk(self, entry: ServerEntry, spec: ServerSpec) -> None:
        """Refuse to start a server whose files are past its disk limit (walked afresh)."""
        used = await self._disk(entry).refresh()
        if used > spec.limits.disk_mb << 20:
            raise CommandFailedError(
                f"server {entry.server_id} uses {used >> 20} MiB of its {spec.limits.disk_mb} "
                "MiB disk limit; delete files or raise the limit before starting it"
            )

    def _sample(self, entry: ServerEntry) -> None:
        entry.stop_stats()
        sid, spec = entry.server_id, entry.spec

        async def over_disk(used: int) -> None:
            await self.reporter.alert(
                sid,
                f"server {sid} uses {used >> 20} MiB, over its disk limit; it will not "
                "start again until files are deleted",
            )

        loop = StatsLoop(
            sid,
            self.runtime,
            self.reporter.publisher,
            lambda: self.reporter.console(sid),
            self._disk(entry),
            interval=self.stats_interval,
            disk_limit=None if spec is None else spec.limits.disk_mb << 20,
            over_disk=over_disk,
        )
        entry.stats = asyncio.create_task(loop.run(), name=f"servers:stats:{entry.server_id}")

    def follow(self, entry: ServerEntry) -> None:
        """Watch and sample a server found running (reattach after a daemon restart)."""
        entry.expected_exit = False
        entry.watcher = asyncio.create_task(
            self._watch(entry), name=f"servers:watch:{entry.server_id}"
        )
        self._sample(entry)

    async def halt(
        self, entry: ServerEntry, *, signal: str | None = None, grace: float | None = None
    ) -> ContainerState:
        """Stop gracefully: the stop command (or signal), then kill after the timeout."""
        sid = entry.server_id
        entry.expected_exit = True
        entry.cancel_restart()
        state = await self.runtime.status(sid)
        if not state.running:
            entry.stop_stats()
            return state
        method = entry.spec.stop if entry.spec is not None else DEFAULT_STOP
        timeout = grace or method.timeout
        await self.reporter.status(sid, ServerStatus.STOPPING)
        if method.command and signal is None:
            state = await self._stop_by_command(sid, method.command, timeout)
        else:
            state = await self.runtime.stop(sid, signal=signal or method.signal, grace=timeout)
        entry.stop_stats()
        await self.reporter.status(sid, ServerStatus.STOPPED, exit_code=state.exit_code)
        return state

    async def _stop_by_command(self, sid: str, command: str, timeout: float) -> ContainerState:  # noqa: ASYNC109
        with contextlib.suppress(ContainerConflictError):
            await self.runtime.send_input(sid, command + "\n")
        try:
            async with asyncio.timeout(timeout):
                return await self.runtime.wait(sid)
        except TimeoutError:
            log.info("servers.stop_timeout", server_id=sid, timeout=timeout)
            with contextlib.suppress(ContainerConflictError):
                await self.runtime.kill(sid, signal="SIGKILL")
            return await self.runtime.wait(sid)

    async def kill(self, entry: ServerEntry, *, signal: str | None = None) -> ContainerState:
        """Send a signal now (SIGKILL unless given) and report the server stopped."""
        sid = entry.server_id
        entry.expected_exit = True
        entry.cancel_restart()
        try:
            await self.runtime.kill(sid, signal=signal or "SIGKILL")
        except ContainerConflictError as exc:
            raise CommandFailedError(f"server {sid} is not running") from exc
        state = await self.runtime.status(sid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_WAIT):
                state = await self.runtime.wait(sid)
        if not state.running:
            entry.stop_stats()
            await self.reporter.status(
                sid, ServerStatus.STOPPED, exit_code=state.exit_code, reason="killed"
            )
        return state

    async def _watch(self, entry: ServerEntry) -> ContainerState | None:
        """Wait for the process to end; an end nobody asked for is a crash."""
        sid = entry.server_id
        try:
            state = await self.runtime.wait(sid)
        except ContainerNotFoundError:
            return None
        except ContainerRuntimeError as exc:
            log.warning("servers.watch_failed", server_id=sid, error=str(exc))
            return None
        if not entry.expected_exit:
            entry.expected_exit = True
            entry.stop_stats()
            if state.exit_code == 137 and not state.oom_killed:
                state = await self._settled(state)
            await self._crashed(entry, state)
        return state

    async def _settled(self, state: ContainerState) -> ContainerState:
        """The state again after a moment: the engine may record an OOM kill after the exit."""
        await asyncio.sleep(OOM_SETTLE)
        try:
            return await self.runtime.status(state.server_id)
        except ContainerRuntimeError:
            return state

    async def _crashed(self, entry: ServerEntry, state: ContainerState) -> None:
        sid, spec = entry.server_id, entry.spec
        assert spec is not None
        decision = entry.crashes.record(spec.crash, time.monotonic())
        reason = exit_reason(state)
        log.warning("servers.crashed", server_id=sid, reason=reason, count=decision.count)
        await self.reporter.status(
            sid,
            ServerStatus.CRASHED,
            exit_code=state.exit_code,
            reason=reason,
            oom_killed=state.oom_killed,
            crash_count=decision.count,
        )
        if decision.loop:
            await self.reporter.alert(
                sid,
                f"server {sid} crashed again ({reason}) within {spec.crash.window:g}s of its "
                "previous crash; it was not restarted",
            )
        elif decision.restart:
            entry.restart = asyncio.create_task(
                self._restart_later(entry, decision.delay), name=f"servers:restart:{sid}"
            )

    async def _restart_later(self, entry: ServerEntry, delay: float) -> None:
        """After the backoff, boot again unless a person is acting on the server."""
        await asyncio.sleep(delay)
        entry.restart = None  # from here on, a person's action no longer cancels us
        if entry.lock.locked():
            log.info("servers.restart_skipped", server_id=entry.server_id)
            return
        async with entry.lock:
            try:
                await self.boot(entry)
            except (CommandFailedError, ContainerRuntimeError) as exc:
                log.warning("servers.restart_failed", server_id=entry.server_id, error=str(exc))
