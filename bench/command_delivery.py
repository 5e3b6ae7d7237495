"""Command latency API → daemon handler, beside raw XADD → XREADGROUP in the same run.

DESIGN.md §7: target p50 < 5 ms, p99 < 20 ms. Starts its own redis-server; runs the full
panel app (auth, routing, the database writes, XADD; in process over ASGI; PostgreSQL when
installed, then SQLite) and a real
daemon `Agent` on the same Redis; measures from the moment the API call starts to the moment
the daemon's `node.ping` handler runs, one command at a time.

    .venv/bin/python bench/command_delivery.py [N]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import structlog
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from broker_delivery import raw_floor, report
from tests.support.services import start_postgres, start_redis

from stellarstack.broker import RedisBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.handlers import CommandHandlers
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import NodeStatus, Role
from stellarstack.panel.db.models import Node, User
from stellarstack.panel.db.session import Database
from stellarstack.protocol.commands import Command
from stellarstack.settings import DaemonSettings, PanelSettings

WARMUP = 50
CSRF = "bench-csrf-token-0123456789"
handled: asyncio.Queue[int] = asyncio.Queue()


async def timed_ping(self: CommandHandlers, command: Command) -> dict[str, Any]:
    """The daemon's ping handler, stamping when it runs."""
    handled.put_nowait(time.perf_counter_ns())
    return {"pong": True}


async def seed(database: Database) -> tuple[str, uuid.UUID]:
    """An admin session and one node."""
    async with database.sessionmaker() as db:
        admin = User(email="bench@example.test", name="b", password_hash="x", role=Role.ADMIN)
        node = Node(
            name="bench",
            fqdn="127.0.0.1",
            region="bench",
            api_token_hash=uuid.uuid4().hex,
            status=NodeStatus.ONLINE,
        )
        db.add_all([admin, node])
        await db.flush()
        token = await create_session(db, admin, ip=None, user_agent=None)
        await db.commit()
        return token, node.id


async def api_path(url: str, db_url: str, workdir: Path, n: int) -> tuple[list[float], list[float]]:
    """POST /api/v1/nodes/{id}/commands → the daemon's handler, n times in sequence.

    Also returns, as a second floor, the latency of an authenticated GET that finds nothing
    (the panel's shared request cost: middleware, session, rate limit, one query).
    """
    await migrate.upgrade(db_url)
    database = Database(db_url)
    token, node_id = await seed(database)
    CommandHandlers.ping = timed_ping  # type: ignore[method-assign]
    panel_broker, daemon_broker = RedisBroker(url), RedisBroker(url)
    settings = PanelSettings(data_dir=workdir, redis_url=url, rate_limit_api_admin="1000000/minute")
    app = create_app(settings, database=database, broker=panel_broker)
    agent = Agent(
        DaemonSettings(data_dir=workdir / "daemon", node_id=str(node_id), runtime="process"),
        daemon_broker,
    )
    await agent.start()
    latencies: list[float] = []
    baseline: list[float] = []
    missing = f"/api/v1/commands/{uuid.uuid4()}"
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://bench",
                cookies={SESSION_COOKIE: token, "stellar_csrf": CSRF},
                headers={"x-csrf-token": CSRF, "origin": "http://bench"},
            ) as client:
                for i in range(WARMUP + n):
                    started = time.perf_counter_ns()
                    assert (await client.get(missing)).status_code == 404
                    if i >= WARMUP:
                        baseline.append((time.perf_counter_ns() - started) / 1e6)
                    started = time.perf_counter_ns()
                    response = await client.post(
                        f"/api/v1/nodes/{node_id}/commands", json={"type": "node.ping"}
                    )
                    assert response.status_code == 202, response.text
                    ran = await asyncio.wait_for(handled.get(), 10)
                    if i >= WARMUP:
                        latencies.append((ran - started) / 1e6)
    finally:
        await agent.stop()
        await panel_broker.close()
        await daemon_broker.close()
        await database.dispose()
    return latencies, baseline


async def main(n: int) -> None:
    """Print the floor and the API path, with the ratio."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server, reason = start_redis()
    if server is None:
        raise SystemExit(f"cannot start redis-server: {reason}")
    try:
        print(f"command delivery: {n} sequential commands (+warm-up), {server.url}")
        floor = report("raw XADD -> XREADGROUP (floor)", await raw_floor(server.url, n), None)
        postgres, _ = start_postgres()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                engines = [("SQLite", f"sqlite+aiosqlite:///{tmp}/panel.db")]
                if postgres is not None:
                    engines.insert(0, ("PostgreSQL", postgres.url(postgres.create_database("b"))))
                for name, db_url in engines:
                    workdir = Path(tmp) / name
                    workdir.mkdir()
                    path, baseline = await api_path(server.url, db_url, workdir, n)
                    report(f"authenticated GET, 404 ({name})", baseline, floor)
                    report(f"API -> daemon handler ({name})", path, floor)
        finally:
            if postgres is not None:
                postgres.stop()
        print("target: p50 < 5 ms, p99 < 20 ms (panel and daemon in one process)")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
