"""The embedded default: panel + local daemon in one process, SQLite, in-process broker.

The local daemon's HTTP app (health, the console WebSocket) listens beside the panel: on
`STELLAR_DAEMON_PORT` when set, else the panel's port + 1, else any free port. It verifies
console tokens with the panel's own signing key, accepts the panel's origin, and the local
node's row points at it so `console-token` hands browsers the right URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.registration import detect_specs
from stellarstack.daemon.service import DaemonService
from stellarstack.logs import get_logger
from stellarstack.panel.app import create_app
from stellarstack.panel.bootstrap import AdminCredentials, ensure_data_dir, ensure_first_admin
from stellarstack.panel.db import migrate
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.pki import ca_directory
from stellarstack.panel.domain.nodes.registration import ensure_local_node
from stellarstack.panel.domain.nodes.schemas import NodeSpecs
from stellarstack.panel.domain.nodes.signing_key import PanelSigningKey
from stellarstack.panel.startup import prepare_panel
from stellarstack.serve import Listener, PortInUse, Service, listen, run_until_signalled
from stellarstack.settings import DaemonSettings, PanelSettings

__all__ = ["daemon_listener", "embedded_daemon_settings", "run_embedded"]

log = get_logger(__name__)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def embedded_daemon_settings(settings: PanelSettings) -> DaemonSettings:
    """The local daemon's settings: its state beside the panel's data, the panel's origins."""
    daemon = DaemonSettings(
        data_dir=settings.data_dir / "daemon",
        panel_url=settings.effective_public_url,
    )
    public = urlsplit(settings.effective_public_url)
    if public.hostname in ("127.0.0.1", "localhost", "::1"):
        # a browser on this machine may call the panel by any loopback name
        port = f":{public.port}" if public.port else ""
        daemon.console_allowed_origins = [
            *daemon.console_allowed_origins,
            *(f"{public.scheme}://{name}{port}" for name in LOOPBACK_NAMES),
        ]
    return daemon


def daemon_listener(
    service: DaemonService, settings: PanelSettings, daemon: DaemonSettings
) -> Listener:
    """Bind the daemon's app: its configured port, else the panel's port + 1, else any port."""
    size = daemon.console_max_message_bytes
    if "port" in daemon.model_fields_set:  # STELLAR_DAEMON_PORT: that port or a clear error
        return listen(service.app, settings.host, daemon.port, ws_max_size=size)
    for port in (settings.port + 1, 0):
        if port > 65535:
            continue
        try:
            return listen(service.app, settings.host, port, ws_max_size=size)
        except PortInUse:
            log.info("embedded.daemon_port_busy", port=port)
    raise PortInUse(f"Cannot find a free port for the local daemon on {settings.host}.")


def bound_port(listener: Listener) -> int:
    """The port a listener's socket is bound to (the real one when it asked for port 0)."""
    return int(listener.sock.getsockname()[1])


async def point_local_node(database: Database, node_id: str, host: str, port: int) -> None:
    """Make the local node's row name where its daemon listens (plain HTTP, loopback)."""
    async with database.sessionmaker() as db:
        node = await db.get(Node, uuid.UUID(node_id))
        if node is None:  # pragma: no cover - ensure_local_node just made or found it
            return
        node.fqdn, node.port, node.scheme = host, port, "http"
        await db.commit()


def _advertised_host(settings: PanelSettings) -> str:
    """The daemon's host as browsers should dial it: the panel's public host name."""
    if settings.host not in ("0.0.0.0", "::"):
        return settings.host
    return urlsplit(settings.effective_public_url).hostname or "127.0.0.1"


def embedded_specs(settings: PanelSettings) -> NodeSpecs:
    """This machine's specs, for the local node's record."""
    specs = detect_specs(settings.data_dir)
    return NodeSpecs(cpu=specs.cpu, memory=specs.memory, disk=specs.disk)


async def run_embedded(
    settings: PanelSettings, announce: Callable[[str, AdminCredentials | None], None]
) -> None:
    """Prepare the data directory and schema, then serve until Ctrl-C."""
    ensure_data_dir(settings)
    url = settings.effective_database_url
    await migrate.upgrade(url)
    database = Database(url)
    broker = MemoryBroker()
    try:
        credentials = await ensure_first_admin(database)
        await prepare_panel(database, settings)
        local = await ensure_local_node(
            database,
            settings.data_dir / "daemon",
            embedded_specs(settings),
            allocation_ip=settings.local_allocation_ip,
            allocation_ports=settings.local_allocation_ports,
        )
        app = create_app(settings, database=database, broker=broker)
        listener = listen(app, settings.host, settings.port)
        daemon_settings = embedded_daemon_settings(settings)
        daemon_settings.node_id, daemon_settings.api_token = local.node_id, local.api_token
        daemon = DaemonService(daemon_settings, broker)
        signing_key = PanelSigningKey.load_or_create(ca_directory(settings))
        daemon.app.state.console.use_public_key(signing_key.private_key.public_key())
        daemon_http = daemon_listener(daemon, settings, daemon_settings)
        daemon_port = bound_port(daemon_http)
        await point_local_node(database, local.node_id, _advertised_host(settings), daemon_port)
        log.info("embedded.daemon_listening", address=f"{settings.host}:{daemon_port}")
        announce(settings.effective_public_url, credentials)
        await run_until_signalled(
            [listener, daemon_http], [Service("daemon", daemon.start, daemon.stop)]
        )
    finally:
        await broker.close()
        await database.dispose()
        log.info("embedded.stopped")
