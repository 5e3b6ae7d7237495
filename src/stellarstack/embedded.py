"""The embedded default: panel + local daemon in one process, SQLite, in-process broker."""

from __future__ import annotations

from collections.abc import Callable

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.registration import detect_specs
from stellarstack.daemon.service import DaemonService
from stellarstack.logs import get_logger
from stellarstack.panel.app import create_app
from stellarstack.panel.bootstrap import AdminCredentials, ensure_data_dir, ensure_first_admin
from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.registration import ensure_local_node
from stellarstack.panel.domain.nodes.schemas import NodeSpecs
from stellarstack.panel.startup import prepare_panel
from stellarstack.serve import Service, listen, run_until_signalled
from stellarstack.settings import DaemonSettings, PanelSettings

__all__ = ["run_embedded"]

log = get_logger(__name__)


def embedded_daemon_settings(settings: PanelSettings) -> DaemonSettings:
    """The local daemon's settings: its state beside the panel's data."""
    return DaemonSettings(
        data_dir=settings.data_dir / "daemon",
        panel_url=settings.effective_public_url,
    )


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
            database, settings.data_dir / "daemon", embedded_specs(settings)
        )
        app = create_app(settings, database=database, broker=broker)
        listener = listen(app, settings.host, settings.port)
        daemon_settings = embedded_daemon_settings(settings)
        daemon_settings.node_id, daemon_settings.api_token = local.node_id, local.api_token
        daemon = DaemonService(daemon_settings, broker)
        announce(settings.effective_public_url, credentials)
        await run_until_signalled([listener], [Service("daemon", daemon.start, daemon.stop)])
    finally:
        await broker.close()
        await database.dispose()
        log.info("embedded.stopped")
