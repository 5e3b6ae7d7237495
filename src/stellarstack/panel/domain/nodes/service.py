"""Node administration: list, read, update, drain or pause, rotate credentials, delete.

DRAINING and MAINTENANCE are admin decisions (the health sweep leaves them alone);
"active" hands the node back to its heartbeats: ONLINE if one arrived recently, else OFFLINE
until the next one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack import __version__
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node, Server
from stellarstack.panel.domain.nodes.credentials import NodeCredentials
from stellarstack.panel.domain.nodes.schemas import NodeOut, NodeStats, NodeUpdate
from stellarstack.panel.domain.nodes.tokens import new_node_token, token_hash
from stellarstack.panel.domain.nodes.versions import check_compatibility
from stellarstack.panel.errors import Conflict, NotFound

__all__ = [
    "ADMIN_STATUSES",
    "count_nodes",
    "delete_node",
    "get_node",
    "list_nodes",
    "node_out",
    "node_servers",
    "node_stats",
    "parse_node_id",
    "rediscover_nodes",
    "rotate_node_token",
    "update_node",
]

log = get_logger(__name__)

ADMIN_STATUSES = {"draining": NodeStatus.DRAINING, "maintenance": NodeStatus.MAINTENANCE}
RECENT_HEARTBEAT = timedelta(seconds=90)


def parse_node_id(value: str) -> uuid.UUID:
    """A node id from a URL; 404 (not 422) for anything that is not one, as for unknown ids."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("There is no node with this id.") from None


async def get_node(db: AsyncSession, node_id: str | uuid.UUID) -> Node:
    """The node, or 404."""
    key = node_id if isinstance(node_id, uuid.UUID) else parse_node_id(node_id)
    node = await db.get(Node, key)
    if node is None:
        raise NotFound("There is no node with this id.")
    return node


async def list_nodes(db: AsyncSession, *, offset: int = 0, limit: int = 100) -> list[Node]:
    """Nodes by name."""
    rows = await db.scalars(sa.select(Node).order_by(Node.name).offset(offset).limit(limit))
    return list(rows)


async def count_nodes(db: AsyncSession) -> int:
    """How many nodes there are."""
    return int(await db.scalar(sa.select(sa.func.count()).select_from(Node)) or 0)


def node_out(node: Node) -> NodeOut:
    """The API view of a node, with its version compatibility."""
    compatibility = check_compatibility(__version__, node.daemon_version)
    return NodeOut.model_validate(
        {
            **{name: getattr(node, name) for name in NodeOut.model_fields if hasattr(node, name)},
            "version_compatible": compatibility.compatible,
            "version_message": compatibility.message,
        }
    )


def node_stats(node: Node) -> NodeStats:
    """The node's latest heartbeat metrics."""
    return NodeStats(
        id=node.id,
        status=node.status,
        last_heartbeat_at=node.last_heartbeat_at,
        metrics=node.last_metrics,
        daemon_version=node.daemon_version,
    )


def _status_after_active(node: Node) -> NodeStatus:
    seen = node.last_heartbeat_at
    if seen is not None and datetime.now(UTC) - seen < RECENT_HEARTBEAT:
        return NodeStatus.ONLINE
    return NodeStatus.OFFLINE


async def update_node(db: AsyncSession, node: Node, body: NodeUpdate) -> dict[str, object]:
    """Apply the fields that were sent; return what changed (for the audit log)."""
    changes: dict[str, object] = {}
    if body.name is not None and body.name != node.name:
        clash = await db.scalar(sa.select(sa.func.count()).where(Node.name == body.name))
        if clash:
            raise Conflict(f"A node called {body.name!r} already exists; choose another name.")
    for name, value in body.model_dump(exclude_unset=True).items():
        if name == "status":
            if value is None:
                continue
            new = ADMIN_STATUSES.get(value) or _status_after_active(node)
            if node.status != new:
                changes["status"] = new.value
                node.status = new
        elif value is None and name in {
            "name",
            "fqdn",
            "scheme",
            "port",
            "sftp_port",
            "region",
            "public",
        }:
            continue  # required columns: null means "leave as is"
        elif getattr(node, name) != value:
            changes[name] = value
            setattr(node, name, value)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(f"A node called {body.name!r} already exists; choose another name.") from exc
    return changes


async def node_servers(db: AsyncSession, node: Node) -> list[Server]:
    """Servers placed on the node, by name."""
    rows = await db.scalars(
        sa.select(Server).where(Server.node_id == node.id).order_by(Server.name)
    )
    return list(rows)


async def delete_node(db: AsyncSession, node: Node, credentials: NodeCredentials) -> None:
    """Remove a node that hosts no servers, and revoke its Redis user."""
    hosted = await db.scalar(
        sa.select(sa.func.count()).select_from(Server).where(Server.node_id == node.id)
    )
    if hosted:
        raise Conflict(
            f"{node.name} still hosts {hosted} server(s); move or delete them first "
            "(drain the node to stop new placements)."
        )
    await db.delete(node)
    await db.flush()
    await credentials.revoke(str(node.id))
    log.info("nodes.deleted", node_id=str(node.id), name=node.name)


async def rotate_node_token(db: AsyncSession, node: Node, credentials: NodeCredentials) -> str:
    """Give the node a new API token; the old one stops working (Redis connections closed)."""
    token = new_node_token()
    node.api_token_hash = token_hash(token)
    await db.flush()
    await credentials.rotate(str(node.id), node.api_token_hash)
    log.info("nodes.token_rotated", node_id=str(node.id))
    return token


def rediscover_nodes(app_state: object) -> None:
    """Tell the event consumer to look for new or deleted node streams now, if it runs."""
    ingest = getattr(getattr(app_state, "background", None), "ingest", None)
    refresh = getattr(ingest, "refresh", None)
    if callable(refresh):
        refresh()
