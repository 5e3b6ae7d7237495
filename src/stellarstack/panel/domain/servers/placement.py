"""Where a new server goes: the node (explicit or chosen) and its ports, reserved atomically.

A node can take a server when it is ONLINE (not draining, in maintenance or silent) and its
servers' memory, disk and CPU, plus the new one's, stay within its capacity raised by its
overallocation percentage (-1 turns that check off; a capacity of 0 means "not reported" and
is not checked). Automatic placement also needs the node to be public, prefers the requested
region, and then the node with the most free memory.

Ports are reserved with one conditional UPDATE (`… SET server_id = :id WHERE id IN (…) AND
server_id IS NULL`) whose row count must equal the number asked for: two requests racing for
the last free port both run it, and the database lets exactly one of them change the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus, Protocol
from stellarstack.panel.db.models import Allocation, Node, Server
from stellarstack.panel.errors import Conflict, FieldError, ValidationFailed

__all__ = [
    "Demand",
    "NodeLoad",
    "choose_node",
    "fits",
    "free_allocations",
    "node_loads",
    "release_allocations",
    "reserve_allocations",
]

log = get_logger(__name__)

# How often automatic port picking retries after losing a race for the ports it picked.
PICK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Demand:
    """What a server needs: resources and one port per blueprint port (with protocols)."""

    memory_mb: int
    disk_mb: int
    cpu: int
    protocols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """A node and what its servers already use."""

    node: Node
    memory_mb: int
    disk_mb: int
    cpu: int
    servers: int

    def free_memory_mb(self) -> int:
        """Memory left before the overallocation limit (large when unchecked)."""
        limit = _limit(self.node.memory_mb, self.node.memory_overallocate_percent)
        return (limit if limit is not None else 1 << 40) - self.memory_mb


def _limit(capacity: int, overallocate: int) -> int | None:
    if overallocate < 0 or capacity <= 0:
        return None
    return capacity * (100 + overallocate) // 100


def fits(load: NodeLoad, demand: Demand) -> str | None:
    """Why the node cannot take the server, or None when it can."""
    node = load.node
    checks = (
        (
            "memory",
            load.memory_mb,
            demand.memory_mb,
            node.memory_mb,
            node.memory_overallocate_percent,
        ),
        ("disk", load.disk_mb, demand.disk_mb, node.disk_mb, node.disk_overallocate_percent),
        ("CPU", load.cpu, demand.cpu, node.cpu_cores * 100, node.cpu_overallocate_percent),
    )
    for label, used, wanted, capacity, over in checks:
        limit = _limit(capacity, over)
        if limit is not None and used + wanted > limit:
            return f"not enough {label} ({max(limit - used, 0)} free, {wanted} needed)"
    if node.max_servers is not None and load.servers >= node.max_servers:
        return f"it already hosts its maximum of {node.max_servers} servers"
    return None


async def node_loads(db: AsyncSession, nodes: Sequence[Node]) -> list[NodeLoad]:
    """Each node with the summed resources of its servers."""
    if not nodes:
        return []
    rows = await db.execute(
        sa.select(
            Server.node_id,
            sa.func.coalesce(sa.func.sum(Server.memory_mb), 0),
            sa.func.coalesce(sa.func.sum(Server.disk_mb), 0),
            sa.func.coalesce(sa.func.sum(Server.cpu_limit), 0),
            sa.func.count(Server.id),
        )
        .where(Server.node_id.in_([n.id for n in nodes]))
        .group_by(Server.node_id)
    )
    used = {row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows.all()}
    return [NodeLoad(n, *used.get(n.id, (0, 0, 0, 0))) for n in nodes]


def _unavailable(node: Node) -> str | None:
    if node.status == NodeStatus.ONLINE:
        return None
    return {
        NodeStatus.DRAINING: "is draining and takes no new servers",
        NodeStatus.MAINTENANCE: "is in maintenance",
    }.get(node.status, f"is {node.status.value}, not online")


async def _free_count(db: AsyncSession, node_id: uuid.UUID) -> int:
    count = await db.scalar(
        sa.select(sa.func.count(Allocation.id)).where(
            Allocation.node_id == node_id, Allocation.server_id.is_(None)
        )
    )
    return int(count or 0)


async def choose_node(
    db: AsyncSession,
    demand: Demand,
    *,
    node_id: uuid.UUID | None,
    region: str | None,
    allow_private: bool = False,
) -> Node:
    """The node for a new server: the one asked for if it can take it, else the best public one.

    Raises ValidationFailed at `nodeId` (unknown or unable) or Conflict when no node fits.
    """
    if node_id is not None:
        node = await db.get(Node, node_id)
        if node is None or not (node.public or allow_private):
            raise ValidationFailed([FieldError("nodeId", "There is no node with this id.")])
        why = _unavailable(node)
        if why is None:
            [load] = await node_loads(db, [node])
            why = fits(load, demand)
        if why is None and await _free_count(db, node.id) < len(demand.protocols):
            why = f"it has fewer than {len(demand.protocols)} free ports"
        if why is not None:
            message = f"Node {node.name!r} cannot take this server: {why}."
            raise ValidationFailed([FieldError("nodeId", message)], detail=message)
        return node
    candidates = (
        (
            await db.execute(
                sa.select(Node).where(Node.status == NodeStatus.ONLINE, Node.public.is_(True))
            )
        )
        .scalars()
        .all()
    )
    loads = [load for load in await node_loads(db, candidates) if fits(load, demand) is None]
    ranked = sorted(
        loads,
        key=lambda load: (
            region is not None and load.node.region != region,
            -load.free_memory_mb(),
        ),
    )
    for load in ranked:
        if await _free_count(db, load.node.id) >= len(demand.protocols):
            return load.node
    raise Conflict(
        "No online node has room for this server (memory, disk, CPU and free ports); "
        "choose smaller resources or ask an administrator to add capacity."
    )


async def free_allocations(db: AsyncSession, node_id: uuid.UUID) -> list[Allocation]:
    """A node's free allocations, by IP and port."""
    rows = await db.execute(
        sa.select(Allocation)
        .where(Allocation.node_id == node_id, Allocation.server_id.is_(None))
        .order_by(Allocation.ip, Allocation.port)
    )
    return list(rows.scalars())


async def _claim(db: AsyncSession, server_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> bool:
    result = await db.execute(
        sa.update(Allocation)
        .where(Allocation.id.in_(list(ids)), Allocation.server_id.is_(None))
        .values(
            server_id=server_id, is_primary=sa.case((Allocation.id == ids[0], True), else_=False)
        )
        .execution_options(synchronize_session=False)
    )
    rowcount: int = getattr(result, "rowcount", 0)
    return rowcount == len(ids)


async def _check_requested(
    db: AsyncSession, node: Node, requested: Sequence[uuid.UUID], demand: Demand
) -> None:
    if len(set(requested)) != len(requested):
        raise ValidationFailed([FieldError("allocationIds", "An allocation is listed twice.")])
    if len(requested) < len(demand.protocols):
        message = f"This blueprint needs {len(demand.protocols)} ports; {len(requested)} given."
        raise ValidationFailed([FieldError("allocationIds", message)], detail=message)
    rows = await db.execute(sa.select(Allocation).where(Allocation.id.in_(list(requested))))
    found = {a.id: a for a in rows.scalars()}
    for index, allocation_id in enumerate(requested):
        allocation = found.get(allocation_id)
        if allocation is None or allocation.node_id != node.id:
            message = f"Allocation {allocation_id} is not an allocation of node {node.name!r}."
            raise ValidationFailed([FieldError(f"allocationIds.{index}", message)], detail=message)
        if allocation.server_id is not None:
            message = f"Port {allocation.ip}:{allocation.port} is already in use."
            raise Conflict(message)


async def reserve_allocations(
    db: AsyncSession,
    node: Node,
    server_id: uuid.UUID,
    demand: Demand,
    requested: Sequence[uuid.UUID] | None,
) -> list[uuid.UUID]:
    """Reserve the requested allocations, or free ones, for the server (the first is primary).

    The server row must already be flushed. Raises ValidationFailed (not this node's), or
    Conflict (taken, or lost to a concurrent request, or too few free ports).
    """
    if requested:
        await _check_requested(db, node, requested, demand)
        if not await _claim(db, server_id, requested):
            raise Conflict("Another server took one of these ports a moment ago; choose others.")
        return list(requested)
    for _ in range(PICK_ATTEMPTS):
        picked = await _pick(db, node.id, demand.protocols)
        if picked is None:
            break
        if await _claim(db, server_id, picked):
            return picked
        await db.execute(
            sa.update(Allocation)
            .where(Allocation.server_id == server_id)
            .values(server_id=None, is_primary=False)
            .execution_options(synchronize_session=False)
        )
        log.info("servers.placement_race_lost", node_id=str(node.id))
    raise Conflict(
        f"Node {node.name!r} has no free ports left for this server; "
        "ask an administrator to add allocations."
    )


async def _pick(
    db: AsyncSession, node_id: uuid.UUID, protocols: Sequence[str]
) -> list[uuid.UUID] | None:
    free = await free_allocations(db, node_id)
    picked: list[uuid.UUID] = []
    for protocol in protocols:
        match = next(
            (a for a in free if a.id not in picked and a.protocol == Protocol(protocol)), None
        )
        match = match or next((a for a in free if a.id not in picked), None)
        if match is None:
            return None
        picked.append(match.id)
    return picked


async def release_allocations(db: AsyncSession, server_id: uuid.UUID) -> None:
    """Free every allocation of a server."""
    await db.execute(
        sa.update(Allocation)
        .where(Allocation.server_id == server_id)
        .values(server_id=None, is_primary=False)
        .execution_options(synchronize_session=False)
    )
