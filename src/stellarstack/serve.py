"""Run uvicorn servers and companion services until SIGINT/SIGTERM, then stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence

import uvicorn
from starlette.types import ASGIApp

from stellarstack.logs import get_logger

__all__ = ["Listener", "PortInUse", "Service", "listen", "run_until_signalled"]

log = get_logger(__name__)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `run_until_signalled`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Do not install uvicorn's own handlers (they would re-raise after shutdown)."""
        yield


class PortInUse(OSError):
    """The address to listen on cannot be bound; the message says which and why."""


class Listener:
    """A uvicorn server with its socket bound up front, so a busy port fails clearly."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock

    async def serve(self) -> None:
        """Serve on the bound socket until told to exit."""
        try:
            await self.server.serve(sockets=[self.sock])
        except SystemExit as exc:  # uvicorn exits the process when its startup fails
            raise RuntimeError("the server failed to start (see the log above)") from exc


def listen(app: ASGIApp, host: str, port: int, *, ws_max_size: int = 16 * 1024 * 1024) -> Listener:
    """Bind host:port and prepare a uvicorn server for the app (structured logs, lifespan).

    `ws_max_size` caps one WebSocket message: larger ones close the socket before they are
    buffered whole.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it each response waits for a delayed ACK (~40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
    sock.set_inheritable(True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
        ws_max_size=ws_max_size,
    )
    return Listener(_QuietServer(config), sock)


class Service:
    """Something started before the servers and stopped after them (e.g. an embedded daemon)."""

    def __init__(
        self, name: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        self.name = name
        self.start = start
        self.stop = stop


async def run_until_signalled(
    listeners: Sequence[Listener], services: Sequence[Service] = ()
) -> None:
    """Start services, serve until a signal (or a server exits), then stop everything."""
    loop = asyncio.get_running_loop()
    servers = [listener.server for listener in listeners]
    stop = asyncio.Event()
    presses = 0

    def request_exit(*, force: bool = False) -> None:
        stop.set()
        for server in servers:
            server.should_exit = True
            server.force_exit = server.force_exit or force

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        request_exit(force=presses > 1)  # a second Ctrl-C skips the graceful wait

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    started: list[Service] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        tasks = [asyncio.create_task(listener.serve()) for listener in listeners]
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.warning("serve.server_exited")
        request_exit()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        waiter.cancel()
        for result in results:
            if isinstance(result, Exception):
                log.error("serve.server_failed", error=repr(result))
    finally:
        if any(not task.done() for task in tasks):  # we were cancelled: stop serving at once
            request_exit(force=True)
            await asyncio.gather(*tasks, return_exceptions=True)
        for service in reversed(started):
            try:
                await service.stop()
            except Exception as exc:
                log.exception("serve.service_stop_failed", service=service.name, error=repr(exc))
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for listener in listeners:
            listener.sock.close()
