"""A user's quotas: how many servers, and how much memory, CPU and disk in total (spec §4.4).

`User.max_servers / max_memory_mb / max_cpu / max_disk_mb` (None = unlimited) bound the sum over
every server the user owns. A refusal is a **403** naming the quota, its limit and what is in
use: the request is well formed, the user is just not entitled to more (docs/servers.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.models import Server, User
from stellarstack.panel.errors import Forbidden

__all__ = ["Usage", "check_quotas", "lock_owner", "usage_of"]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a user's servers hold together."""

    servers: int
    memory_mb: int
    cpu: int
    disk_mb: int


async def lock_owner(db: AsyncSession, owner_id: uuid.UUID) -> None:
    """Serialize deployments of one owner until the transaction ends, so quotas hold.

    A no-op write on the owner's row: PostgreSQL locks that row (a second deployment of the
    same owner waits, then counts the first one's server); SQLite takes its write lock.
    """
    await db.execute(
        sa.update(User)
        .where(User.id == owner_id)
        .values(max_servers=User.max_servers)
        .execution_options(synchronize_session=False)
    )


async def usage_of(
    db: AsyncSession, user_id: uuid.UUID, *, excluding: uuid.UUID | None = None
) -> Usage:
    """The summed resources of a user's servers (optionally leaving one out)."""
    query = sa.select(
        sa.func.count(Server.id),
        sa.func.coalesce(sa.func.sum(Server.memory_mb), 0),
        sa.func.coalesce(sa.func.sum(Server.cpu_limit), 0),
        sa.func.coalesce(sa.func.sum(Server.disk_mb), 0),
    ).where(Server.owner_id == user_id)
    if excluding is not None:
        query = query.where(Server.id != excluding)
    row = (await db.execute(query)).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def check_quotas(
    db: AsyncSession,
    owner: User,
    *,
    memory_mb: int,
    cpu: int,
    disk_mb: int,
    replacing: uuid.UUID | None = None,
) -> None:
    """Refuse (403) when the owner's servers would exceed a quota; `replacing` is being resized."""
    used = await usage_of(db, owner.id, excluding=replacing)
    if replacing is None and owner.max_servers is not None and used.servers >= owner.max_servers:
        raise Forbidden(
            f"Server quota reached: you have {used.servers} of {owner.max_servers} servers. "
            "Delete one or ask an administrator to raise the quota."
        )
    checks = (
        ("Memory", owner.max_memory_mb, used.memory_mb, memory_mb, "MiB"),
        ("CPU", owner.max_cpu, used.cpu, cpu, "%"),
        ("Disk", owner.max_disk_mb, used.disk_mb, disk_mb, "MiB"),
    )
    for label, limit, in_use, wanted, unit in checks:
        if limit is not None and in_use + wanted > limit:
            raise Forbidden(
                f"{label} quota exceeded: {wanted} {unit} requested, "
                f"{max(limit - in_use, 0)} {unit} of your {limit} {unit} left."
            )
