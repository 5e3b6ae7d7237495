"""Work every panel process does at start, before serving: idempotent and safe to repeat."""

from __future__ import annotations

from sqlalchemy import select

from stellarstack.logs import get_logger
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.importing import install_catalog
from stellarstack.panel.domain.nodes.credentials import NodeCredentials
from stellarstack.settings import PanelSettings

__all__ = ["prepare_panel", "restore_node_credentials"]

log = get_logger(__name__)


async def restore_node_credentials(database: Database, settings: PanelSettings) -> int:
    """Re-create every node's Redis ACL user (Redis keeps them in memory only); return count."""
    credentials = NodeCredentials(settings.redis_url)
    if not credentials.enabled:
        return 0
    async with database.sessionmaker() as db:
        rows = (await db.execute(select(Node.id, Node.api_token_hash))).all()
    await credentials.restore((str(node_id), token_hash) for node_id, token_hash in rows)
    return len(rows)


async def prepare_panel(database: Database, settings: PanelSettings) -> None:
    """Install the shipped blueprint catalogue and restore node credentials.

    A failure here is logged and the panel still starts: /health reports what is down, and
    the next start (or replica) tries again.
    """
    try:
        summary = await install_catalog(database, settings)
        log.info(
            "startup.catalog_installed",
            created=len(summary.created),
            updated=len(summary.updated),
            unchanged=len(summary.unchanged),
            problems=len(summary.problems),
        )
    except Exception as exc:
        log.warning("startup.catalog_failed", error=repr(exc))
    try:
        restored = await restore_node_credentials(database, settings)
        if restored:
            log.info("startup.node_credentials_restored", nodes=restored)
    except Exception as exc:
        log.warning("startup.node_credentials_failed", error=repr(exc))
