"""Health of the panel and its dependencies (spec §15.2, §15.3).

`degraded` names the dependencies that do not answer. With Redis down but the database up the
panel keeps serving (spec §15.3): pages and the API read status from the database instead of
the cache (`domain/events/cache.py`), only live events (SSE) and command delivery pause — so
`/health` answers 200 with `"status": "degraded"` (a load balancer keeps the replica). Without
the database nothing works: 503 (`serving(report)` decides).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, select

from stellarstack import __version__
from stellarstack.broker import Broker, MemoryBroker
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database

__all__ = ["HealthReport", "check_health", "serving"]

log = get_logger(__name__)
HealthReport = dict[str, Any]
Status = Literal["healthy", "unhealthy"]


async def _timed(probe: Awaitable[Any], within: float) -> tuple[Status, float, str | None]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe, within)
    except Exception as exc:  # any failure of a dependency is a finding, not a crash
        return "unhealthy", _ms(start), _describe(exc)
    return "healthy", _ms(start), None


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


async def _node_counts(database: Database) -> dict[str, int]:
    async with database.sessionmaker() as session:
        rows = (
            await session.execute(select(Node.status, func.count()).group_by(Node.status))
        ).all()
    counts = {status: int(n) for status, n in rows}
    return {
        "total": sum(counts.values()),
        "healthy": counts.get(NodeStatus.ONLINE, 0),
        "unhealthy": counts.get(NodeStatus.UNHEALTHY, 0),
        "offline": counts.get(NodeStatus.OFFLINE, 0),
    }


async def check_health(database: Database, broker: Broker, *, within: float) -> HealthReport:
    """Probe the database and the broker concurrently and count nodes by status."""
    (db_status, db_ms, db_err), (br_status, br_ms, br_err) = await asyncio.gather(
        _timed(database.ping(), within), _timed(broker.ping(), within)
    )
    checks: dict[str, Any] = {
        "database": {"status": db_status, "latency": db_ms},
        "redis": {
            "status": br_status,
            "latency": br_ms,
            "mode": "embedded" if isinstance(broker, MemoryBroker) else "redis",
        },
    }
    if db_err:
        checks["database"]["error"] = db_err
    if br_err:
        checks["redis"]["error"] = br_err
    nodes: dict[str, Any] = {"total": 0, "healthy": 0, "unhealthy": 0, "offline": 0}
    if db_status == "healthy":
        try:
            nodes = await asyncio.wait_for(_node_counts(database), within)
        except Exception as exc:
            log.warning("health.node_count_failed", error=_describe(exc))
            nodes = {**nodes, "error": _describe(exc)}
    checks["nodes"] = nodes
    failing = [name for name in ("database", "redis") if checks[name]["status"] != "healthy"]
    return {
        "status": "degraded" if failing else "healthy",
        "degraded": failing,
        "version": __version__,
        "checks": checks,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


def serving(report: HealthReport) -> bool:
    """Whether this replica can serve requests: its database answers (Redis may be down)."""
    return bool(report["checks"]["database"]["status"] == "healthy")
