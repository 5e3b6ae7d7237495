"""The servers service: one import for routes and pages (deploy, read, change, remove).

The work lives in its own modules — `deploy` (create), `views` (look-ups, lists, API shapes),
`lifecycle` (update, delete, suspend), `placement` (nodes and ports), `quotas`, `variables`,
`spec` (the `server.create` payload) — and is re-exported here. Two helpers for the deploy
wizard are defined here: the nodes a caller may pick and a node's free ports.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Allocation, Node
from stellarstack.panel.domain.servers.deploy import can_manage_any_server, create_server
from stellarstack.panel.domain.servers.lifecycle import (
    RESTART_NOTE,
    Updated,
    delete_server,
    ensure_not_suspended,
    suspend_server,
    unsuspend_server,
    update_server,
)
from stellarstack.panel.domain.servers.placement import free_allocations as _free
from stellarstack.panel.domain.servers.views import (
    get_server,
    list_deployments,
    list_servers,
    load_server,
    server_out,
)

__all__ = [
    "RESTART_NOTE",
    "Updated",
    "can_manage_any_server",
    "create_server",
    "delete_server",
    "deployable_nodes",
    "ensure_not_suspended",
    "free_allocations",
    "get_server",
    "list_deployments",
    "list_servers",
    "load_server",
    "server_out",
    "suspend_server",
    "unsuspend_server",
    "update_server",
]


async def deployable_nodes(db: AsyncSession, principal: Principal) -> list[Node]:
    """Nodes the caller may deploy to by hand: online ones; public ones unless an admin."""
    query = sa.select(Node).where(Node.status == NodeStatus.ONLINE)
    if not can_manage_any_server(principal):
        query = query.where(Node.public.is_(True))
    return list((await db.execute(query.order_by(Node.region, Node.name))).scalars())


async def free_allocations(db: AsyncSession, node_id: uuid.UUID) -> list[Allocation]:
    """A node's free allocations (IP, port), for choosing ports in the deploy wizard."""
    return await _free(db, node_id)
