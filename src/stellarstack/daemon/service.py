"""Entry points: the daemon standalone (`run_daemon`) or inside the panel (`DaemonService`).

Standalone (the `stellarstack daemon` command)::

    asyncio.run(run_daemon(DaemonSettings()))      # until SIGINT/SIGTERM or cancellation

Embedded (`stellarstack up`): the panel's process shares its broker and runs no second HTTP
server; `service.app` can be mounted by the panel if it wants the daemon's routes::

    service = DaemonService(daemon_settings, broker)
    await service.start()
    ...
    await service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from stellarstack.broker import Broker, create_broker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.app import create_app
from stellarstack.daemon.errors import DaemonStartError
from stellarstack.daemon.runtime import Runtime
from stellarstack.logs import get_logger
from stellarstack.protocol import keys
from stellarstack.serve import Listener, listen
from stellarstack.settings import DaemonSettings

__all__ = ["DaemonService", "broker_for", "run_daemon", "use_node_certificate"]

log = get_logger(__name__)


class DaemonService:
    """The agent and the daemon's ASGI app, without a listening socket of its own."""

    def __init__(
        self, settings: DaemonSettings, broker: Broker, *, runtime: Runtime | None = None
    ) -> None:
        self.settings = settings
        self.agent = Agent(settings, broker, runtime=runtime)
        self.app = create_app(self.agent)

    async def start(self) -> None:
        """Start the agent (runtime, state, command loop, heartbeats)."""
        await self.agent.start()

    async def stop(self) -> None:
        """Stop the agent and close what it opened."""
        await self.agent.stop()


def broker_for(settings: DaemonSettings) -> Broker:
    """The broker a standalone daemon uses: Redis as its node's ACL user, or in process."""
    if not settings.redis_url:
        log.warning("daemon.no_broker", hint="set redis_url to receive the panel's commands")
    username = None
    if settings.node_id and settings.api_token:
        username = keys.node_acl_username(settings.node_id)
    return create_broker(settings.redis_url, username=username, password=settings.api_token)


async def run_daemon(settings: DaemonSettings, broker: Broker | None = None) -> None:
    """Run the agent and the HTTP server on settings.host:port until a signal or cancellation."""
    active = broker or broker_for(settings)
    service = DaemonService(settings, active)
    try:
        listener = listen(  # PortInUse, before all
            service.app,
            settings.host,
            settings.port,
            ws_max_size=settings.console_max_message_bytes,
        )
        try:
            use_node_certificate(listener, settings)
            await service.start()
            try:
                await _serve(listener)
            finally:
                await service.stop()
        finally:
            listener.sock.close()
    finally:
        if broker is None:
            await active.close()


def use_node_certificate(listener: Listener, settings: DaemonSettings) -> None:
    """Serve HTTPS with the node certificate when registration wrote one (else plain HTTP)."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if not cert and not key:
        return
    if not (cert and key and cert.is_file() and key.is_file()):
        raise DaemonStartError(
            f"TLS needs both tls_cert_file and tls_key_file; found {cert} and {key}"
        )
    config = listener.server.config
    config.ssl_certfile, config.ssl_keyfile = str(cert), str(key)
    log.info("daemon.tls", certificate=str(cert))


async def _serve(listener: Listener) -> None:
    """Serve until SIGINT/SIGTERM or cancellation; either way uvicorn shuts down gracefully."""
    server = listener.server
    loop = asyncio.get_running_loop()

    def exit_soon() -> None:
        """Let uvicorn finish its requests and return."""
        server.should_exit = True

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, exit_soon)
            installed.append(sig)
    serving = asyncio.create_task(listener.serve(), name="daemon:http")
    log.info("daemon.listening", address=f"{server.config.host}:{server.config.port}")
    try:
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        await asyncio.wait({serving})
        for sig in installed:
            loop.remove_signal_handler(sig)
