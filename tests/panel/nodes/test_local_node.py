"""The embedded default's own node: registered once, with allocations to deploy on at once."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

from stellarstack.panel.db import migrate
from stellarstack.panel.db.models import Allocation, Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.registration import ensure_local_node
from stellarstack.panel.domain.nodes.schemas import NodeSpecs

SPECS = NodeSpecs(cpu=2, memory=4096, disk=20_000)


async def test_the_local_node_gets_tcp_and_udp_allocations_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'panel.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    try:
        first = await ensure_local_node(
            database,
            tmp_path / "daemon",
            SPECS,
            allocation_ip="127.0.0.1",
            allocation_ports=["25565-25567", "30000"],
        )
        again = await ensure_local_node(
            database,
            tmp_path / "daemon",
            SPECS,
            allocation_ip="127.0.0.1",
            allocation_ports=["25565-25567", "30000"],
        )
        assert again == first
        async with database.sessionmaker() as db:
            rows = (
                await db.execute(
                    sa.select(Allocation.ip, Allocation.port, Allocation.protocol).where(
                        Allocation.node_id == uuid.UUID(first.node_id)
                    )
                )
            ).all()
            assert await db.scalar(sa.select(sa.func.count()).select_from(Node)) == 1
        ports = sorted((port, protocol.value) for ip, port, protocol in rows if ip == "127.0.0.1")
        assert ports == sorted(
            (p, proto) for p in (25565, 25566, 25567, 30000) for proto in ("tcp", "udp")
        )
    finally:
        await database.dispose()
