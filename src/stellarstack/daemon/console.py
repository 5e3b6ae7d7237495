"""The console hub: each server's live output, fanned out to its viewers in batched frames.

One pump task per server reads the runtime's output stream and never waits for a viewer::

    runtime output ──▶ ServerConsole (history ring, throttle) ──every ~25 ms──▶ one JSON frame
        ──▶ Viewer outbox (bounded in bytes; a slow viewer loses its own oldest frames)
        ──▶ that viewer's socket

Usage::

    hub = ConsoleHub(ConsoleLimits())
    hub.bind(runtime)
    console = await hub.register("srv-1")      # attached before the server starts
    viewer = console.join()                     # history replay is viewer's first frame
    frame = await viewer.next()                 # JSON text: {"event": "console output", …}
    console.leave(viewer)
    await hub.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections import deque
from dataclasses import dataclass

from stellarstack.daemon.runtime import (
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerState,
    ContainerStatus,
    Runtime,
)
from stellarstack.daemon.runtime.output import next_lines
from stellarstack.logs import get_logger
from stellarstack.settings import DaemonSettings

__all__ = [
    "ConsoleHub",
    "ConsoleLimits",
    "Inbound",
    "Outbound",
    "ServerConsole",
    "Viewer",
    "ViewerClosed",
    "encode",
    "status_of",
]

log = get_logger(__name__)

ATTACH_TIMEOUT = 5.0
"""Seconds `register` waits for the first attach before giving up on catching early output."""

_CLEAN_EXITS = frozenset({0, 130, 137, 143})  # exit, SIGINT, SIGKILL, SIGTERM: asked to stop


class Inbound(enum.StrEnum):
    """Events a client sends."""

    AUTH = "auth"
    SEND_COMMAND = "send command"
    SET_STATE = "set state"
    SEND_LOGS = "send logs"
    SEND_STATS = "send stats"


class Outbound(enum.StrEnum):
    """Events the daemon sends."""

    AUTH_SUCCESS = "auth success"
    CONSOLE_OUTPUT = "console output"
    STATUS = "status"
    STATS = "stats"
    INSTALL_OUTPUT = "install output"
    DEPLOYMENT_PROGRESS = "deployment progress"
    TOKEN_EXPIRING = "token expiring"  # noqa: S105 - an event name
    TOKEN_EXPIRED = "token expired"  # noqa: S105 - an event name
    DAEMON_MESSAGE = "daemon message"
    DAEMON_ERROR = "daemon error"


def encode(event: Outbound, *args: object) -> str:
    """One `{"event", "args"}` envelope as JSON text."""
    return json.dumps(
        {"event": event.value, "args": list(args)}, ensure_ascii=False, separators=(",", ":")
    )


def status_of(state: ContainerState) -> str:
    """The console status of a runtime state: running, starting, stopped or crashed."""
    if state.status is ContainerStatus.RUNNING:
        return "running"
    if state.status is ContainerStatus.RESTARTING:
        return "starting"
    if state.oom_killed or (state.exit_code is not None and state.exit_code not in _CLEAN_EXITS):
        return "crashed"
    return "stopped"


@dataclass(frozen=True, slots=True)
class ConsoleLimits:
    """How much history to replay, how often to send, and where output is cut back."""

    history_lines: int = 150
    batch_interval: float = 0.025
    max_lines_per_second: int = 50_000
    """Throttle ceiling per server; 0 disables it."""
    viewer_buffer_bytes: int = 1 << 20

    @classmethod
    def from_settings(cls, settings: DaemonSettings) -> ConsoleLimits:
        """The limits configured for this daemon."""
        return cls(
            history_lines=settings.console_history_lines,
            batch_interval=settings.console_batch_ms / 1000,
            max_lines_per_second=settings.console_max_lines_per_second,
            viewer_buffer_bytes=settings.console_viewer_buffer_bytes,
        )


class ViewerClosed(Exception):
    """The viewer left; nothing more will come out of its outbox."""


class Viewer:
    """One socket's outbox, bounded in bytes: when full, its own oldest frames are dropped."""

    def __init__(self, limit_bytes: int) -> None:
        self._frames: deque[tuple[str, int]] = deque()
        self._bytes = 0
        self._limit = limit_bytes
        self._skipped = 0
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, frame: str, lines: int = 0) -> None:
        """Queue a frame (never waits); drop the oldest frames past the limit, counting lines."""
        if self.closed:
            return
        self._frames.append((frame, lines))
        self._bytes += len(frame)
        while self._bytes > self._limit and len(self._frames) > 1:
            old, count = self._frames.popleft()
            self._bytes -= len(old)
            self._skipped += count
        self._ready.set()

    async def next(self) -> str:
        """The next frame to send; a notice first when this viewer's output was cut."""
        while not self._frames and not self._skipped:
            if self.closed:
                raise ViewerClosed
            self._ready.clear()
            await self._ready.wait()
        if self._skipped:
            skipped, self._skipped = self._skipped, 0
            return encode(
                Outbound.DAEMON_MESSAGE,
                f"{skipped} lines of output were skipped: this connection could not keep up",
            )
        frame, _ = self._frames.popleft()
        self._bytes -= len(frame)
        return frame

    def close(self) -> None:
        """Stop accepting frames and wake the sender so it can finish."""
        self.closed = True
        self._ready.set()


QUICK_SENDS_PER_SECOND = 20_000
"""Socket sends per second per server that may skip the batch wait, shared by its viewers."""
_QUICK_FRAMES_CEILING = 5_000.0
"""Quick frames per second at most, however few viewers watch."""


class _FrameBudget:
    """A token bucket of frames that may skip the batch wait (keeps echoes instant).

    Each frame costs one send per viewer, so the rate shrinks as viewers join: a lone viewer
    gets up to 5000 instant frames/s, a thousand viewers the floor of two per batch interval.
    """

    def __init__(self, floor_per_second: float, burst: float) -> None:
        self._floor, self._burst = floor_per_second, burst
        self._tokens, self._at = burst, 0.0

    def allow(self, now: float, viewers: int) -> bool:
        """Take one frame from the budget if there is one."""
        rate = max(
            self._floor, min(_QUICK_FRAMES_CEILING, QUICK_SENDS_PER_SECOND / max(viewers, 1))
        )
        self._tokens = min(self._burst, self._tokens + (now - self._at) * rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class ServerConsole:
    """The console of one server: pump, history ring, throttle and viewers."""

    def __init__(self, server_id: str, runtime: Runtime, limits: ConsoleLimits) -> None:
        self.server_id = server_id
        self.status = "stopped"
        self.attached = asyncio.Event()
        self._runtime = runtime
        self._limits = limits
        self._history: deque[str] = deque(maxlen=limits.history_lines)
        self._viewers: set[Viewer] = set()
        self._pending: list[str] = []
        self._batch_started = 0.0
        self._last_flush = 0.0
        self._quick = _FrameBudget(floor_per_second=2 / limits.batch_interval, burst=20)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._window_started = 0.0
        self._window_lines = 0
        self._throttled = 0
        self._noticed_at = -1.0
        self._task: asyncio.Task[None] | None = None
        self._attaches = 0
        self._status_changes = 0
        self._attached_again = asyncio.Event()

    @property
    def viewers(self) -> int:
        """How many viewers are watching."""
        return len(self._viewers)

    async def start(self) -> None:
        """Seed the history from the runtime's log and start following output."""
        with contextlib.suppress(ContainerRuntimeError):
            self._history.extend(
                line.text
                for line in await self._runtime.logs(
                    self.server_id, tail=self._limits.history_lines
                )
            )
        await self._refresh_status()
        self._task = asyncio.create_task(self._pump(), name=f"console:{self.server_id}")
        self._task.add_done_callback(lambda _: self._attached_again.set())

    @property
    def following(self) -> bool:
        """True while the pump follows the server's output (False once the server is gone)."""
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop following output and close every viewer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._flush()
        for viewer in self._viewers:
            viewer.close()
        self._viewers.clear()

    def join(self, *, replay: bool = True) -> Viewer:
        """A new viewer; its outbox starts with the current status and the history."""
        viewer = Viewer(self._limits.viewer_buffer_bytes)
        viewer.offer(encode(Outbound.STATUS, self.status))
        if replay:
            self.replay_to(viewer)
        self._viewers.add(viewer)
        return viewer

    def replay_to(self, viewer: Viewer) -> None:
        """Queue the last lines of output (up to `history_lines`) for one viewer."""
        if self._history:
            viewer.offer(encode(Outbound.CONSOLE_OUTPUT, *self._history), len(self._history))

    def leave(self, viewer: Viewer) -> None:
        """Forget a viewer and close its outbox."""
        self._viewers.discard(viewer)
        viewer.close()

    def broadcast(self, event: Outbound, *args: object) -> None:
        """Send one event to every viewer (status changes, notices)."""
        frame = encode(event, *args)
        for viewer in self._viewers:
            viewer.offer(frame)

    def set_status(self, status: str) -> None:
        """Record and announce a status (only when it changed)."""
        self._status_changes += 1
        if status != self.status:
            self.status = status
            self.broadcast(Outbound.STATUS, status)

    async def power(self, action: str, *, grace: float = 30.0) -> None:
        """Start, stop, restart or kill the server, announcing each status on the way."""
        runtime = self._runtime
        attaches = self._attaches
        if action in ("stop", "restart"):
            self.set_status("stopping")
            await runtime.stop(self.server_id, grace=grace)
        elif action == "kill":
            await runtime.kill(self.server_id)
        if action in ("start", "restart"):
            await self.ready_for_start(after=attaches if action == "restart" else None)
            self.set_status("starting")
            await runtime.start(self.server_id)
            self.set_status("running")

    async def ready_for_start(self, *, after: int | None = None) -> None:
        """Wait (bounded) until the pump is attached, so a start loses no early output."""

        def ready() -> bool:
            if not self.following:
                return True
            return self.attached.is_set() and (after is None or self._attaches > after)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ATTACH_TIMEOUT):
                while not ready():
                    self._attached_again.clear()
                    await self._attached_again.wait()

    async def _refresh_status(self) -> None:
        """Ask the runtime, unless a power action set the status while we were asking."""
        before = self._status_changes
        with contextlib.suppress(ContainerRuntimeError):
            state = await self._runtime.status(self.server_id)
            if self._status_changes == before:
                self.set_status(status_of(state))

    async def _pump(self) -> None:
        """Follow output run after run: attach, read to the end, announce the status, repeat."""
        backoff = 0.1
        while True:
            try:
                output = await self._runtime.attach(self.server_id)
            except ContainerNotFoundError:
                log.info("console.server_gone", server_id=self.server_id)
                self.set_status("stopped")
                return
            except ContainerRuntimeError as exc:
                log.warning("console.attach_failed", server_id=self.server_id, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._attaches += 1
            self.attached.set()
            self._attached_again.set()
            began = asyncio.get_running_loop().time()
            try:
                async with output:
                    await self._refresh_status()
                    while lines := await next_lines(output):
                        self._accept(lines)
                if asyncio.get_running_loop().time() - began > 1.0:
                    backoff = 0.1
                else:  # a run that ends at once (being removed?) must not spin the loop
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            except ContainerRuntimeError as exc:
                log.warning("console.output_failed", server_id=self.server_id, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.attached.clear()
                self._flush(final=True)
            await self._refresh_status()

    def _accept(self, lines: list[str]) -> None:
        """Take a batch of lines: count it against the ceiling, batch it, flush when due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        ceiling = self._limits.max_lines_per_second
        if ceiling:
            if now - self._window_started >= 1.0:
                self._window_started, self._window_lines = now, 0
            room = max(ceiling - self._window_lines, 0)
            self._window_lines += len(lines)
            if len(lines) > room:
                self._throttled += len(lines) - room
                lines = lines[:room]
                if not lines:
                    return
        interval = self._limits.batch_interval
        if not self._pending:
            # Interactive output (an echo, a prompt) goes out at once, within a small budget
            # of frames per second; sustained output waits for the interval and travels in bulk.
            self._batch_started = now
            delay = (
                0.0
                if self._quick.allow(now, len(self._viewers))
                else self._last_flush + interval - now
            )
            self._flush_timer = loop.call_later(max(delay, 0.0), self._flush)
        self._pending.extend(lines)
        if now - self._batch_started >= interval:
            self._flush()

    def _flush(self, *, final: bool = False) -> None:
        """Send the pending lines as one frame to every viewer (and the throttle notice)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._pending:
            self._last_flush = asyncio.get_running_loop().time()
            lines, self._pending = self._pending, []
            self._history.extend(lines)
            frame = encode(Outbound.CONSOLE_OUTPUT, *lines)
            for viewer in self._viewers:
                viewer.offer(frame, len(lines))
        if self._throttled:
            now = asyncio.get_running_loop().time()
            if final or now - self._noticed_at >= 1.0:
                self._noticed_at = now
                skipped, self._throttled = self._throttled, 0
                self.broadcast(
                    Outbound.DAEMON_MESSAGE,
                    f"output throttled: {skipped} lines over the limit of "
                    f"{self._limits.max_lines_per_second} lines/s were not shown",
                )


class ConsoleHub:
    """The consoles of this daemon's servers, by server id."""

    def __init__(self, limits: ConsoleLimits) -> None:
        self.limits = limits
        self._runtime: Runtime | None = None
        self._consoles: dict[str, ServerConsole] = {}
        self._lock = asyncio.Lock()

    def bind(self, runtime: Runtime) -> None:
        """Use `runtime` for every console registered from now on."""
        self._runtime = runtime

    def get(self, server_id: str) -> ServerConsole | None:
        """The console of a registered server, or None."""
        return self._consoles.get(server_id)

    async def register(self, server_id: str) -> ServerConsole:
        """The server's console, created and attached (before its start) if new."""
        if self._runtime is None:
            raise RuntimeError("the console hub has no runtime yet")
        async with self._lock:
            console = self._consoles.get(server_id)
            if console is not None and not console.following:
                await console.stop()
                console = None
            if console is None:
                console = ServerConsole(server_id, self._runtime, self.limits)
                await console.start()
                self._consoles[server_id] = console
                log.info("console.registered", server_id=server_id)
        await console.ready_for_start()
        return console

    async def unregister(self, server_id: str) -> None:
        """Stop a server's console and disconnect its viewers."""
        console = self._consoles.pop(server_id, None)
        if console is not None:
            await console.stop()
            log.info("console.unregistered", server_id=server_id)

    async def close(self) -> None:
        """Stop every console."""
        for server_id in list(self._consoles):
            await self.unregister(server_id)
