"""Deployment: `POST /servers` → RUNNING, and API start/stop beside raw Engine API start/stop.

One process runs the panel (SQLite + in-process broker, or PostgreSQL + Redis) over ASGI and a
daemon `Agent` on the Docker runtime on the same broker. Each server is the test game
(`tests/support/game_image.py`), timed from `POST /api/v1/servers` until the panel applied
RUNNING (it republishes the daemon's `server.status` after its commit; we stamp that). Floor:
a raw `create` + `start` of the same image, port and limits, to its ready line. Then, on each
server's own container, interleaved rounds of raw `start` / `stop -t 10` (aiodocker) and
`POST /servers/{id}/start|stop` with `wait` (until applied and answered); ratios are ours/raw
of the medians. Servers are deleted through the API; a container left behind fails the run.
Figures and caveats: docs/development.md, "Deployment".

    .venv/bin/python bench/deploy.py [--servers 5] [--rounds 3] [--postgres-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import structlog
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.game_image import (
    GAME_BLUEPRINT_SLUG,
    GAME_IMAGE,
    GAME_SCRIPT_PATH,
    build_game_image,
    game_blueprint_yaml,
)
from tests.support.services import free_port, start_docker, start_postgres, start_redis

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import Broker, MemoryBroker, RedisBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.runtime import DockerRuntime
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.csrf import CSRF_COOKIE
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import BlueprintSource, NodeStatus, Role
from stellarstack.panel.db.models import Allocation, Node, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.service import save_blueprint
from stellarstack.protocol import keys
from stellarstack.settings import DaemonSettings, PanelSettings

__all__ = ["BenchFailed", "Figures", "Stack", "main", "open_stack", "run", "table"]

TARGET_RATIO = 1.5
"""Our start/stop may cost at most this much of the raw engine call (ratio of medians)."""
STEP_TIMEOUT = 60.0
"""Seconds one deployment or power action may take before the run fails."""
READY_LINE = "Server ready on port"
"""What the test game logs once it serves its port."""


class BenchFailed(Exception):
    """A run that did not go through (the bench exits non-zero with this message)."""


@dataclass
class Figures:
    """Milliseconds measured in one run, and what it ran on."""

    stack: str
    servers: int
    rounds: int
    deploy: list[float] = field(default_factory=list)
    raw_create_start: list[float] = field(default_factory=list)
    raw_create_ready: list[float] = field(default_factory=list)
    raw_start: list[float] = field(default_factory=list)
    raw_stop: list[float] = field(default_factory=list)
    applied: dict[str, list[float]] = field(default_factory=lambda: {"start": [], "stop": []})
    """Per power action: until the panel applied the daemon's new status (its event)."""
    answered: dict[str, list[float]] = field(default_factory=lambda: {"start": [], "stop": []})
    """Per power action: until the API answered the finished command (`wait`)."""

    def ours(self, action: str) -> list[float]:
        """Per round: until both the status was applied and the API answered."""
        return [max(pair) for pair in zip(self.applied[action], self.answered[action], strict=True)]


@dataclass
class Panel:
    """The running panel + daemon, the owner's headers and the status events it republishes."""

    client: httpx.AsyncClient
    runtime: DockerRuntime
    node_id: uuid.UUID
    headers: dict[str, str]
    statuses: asyncio.Queue[tuple[float, str, str]]

    def drain(self) -> None:
        """Forget status events received so far (each step waits only for its own)."""
        while not self.statuses.empty():
            self.statuses.get_nowait()

    async def reaches(self, server_id: str, status: str) -> float:
        """When (perf_counter) the panel republished `status` for the server."""
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                stamp, sid, seen = await self.statuses.get()
                if sid == server_id and seen == status:
                    return stamp
                if sid == server_id and seen in ("crashed", "install_failed"):
                    raise BenchFailed(f"server {server_id} went {seen} while waiting for {status}")


def ms(began: float, ended: float) -> float:
    """Milliseconds between two perf_counter readings."""
    return (ended - began) * 1000


async def _seed(database: Database, ports: int) -> tuple[uuid.UUID, dict[str, str]]:
    """An owner with a session, an online node with `ports` free loopback allocations, and
    the test game as an operator blueprint; returns the node id and the owner's headers."""
    async with database.sessionmaker() as db:
        owner = User(email="bench@example.test", name="bench", password_hash="!", role=Role.USER)
        tag = uuid.uuid4().hex[:8]
        node = Node(
            name=f"bench-{tag}",
            fqdn="127.0.0.1",
            region="local",
            cpu_cores=64,
            memory_mb=64_000,
            disk_mb=500_000,
            status=NodeStatus.ONLINE,
            api_token_hash=f"bench-{tag}",
        )
        db.add_all([owner, node])
        await db.flush()
        db.add_all(
            Allocation(node_id=node.id, ip="127.0.0.1", port=free_port()) for _ in range(ports)
        )
        spec = BlueprintSpec.from_yaml(game_blueprint_yaml())
        await save_blueprint(
            db, spec, source=BlueprintSource.OPERATOR, source_ref=None, source_hash=None
        )
        token = await create_session(db, owner, ip="127.0.0.1", user_agent="bench")
        await db.commit()
        node_id = node.id
    csrf = secrets.token_urlsafe(32)
    headers = {"Cookie": f"{SESSION_COOKIE}={token}; {CSRF_COOKIE}={csrf}", "X-CSRF-Token": csrf}
    return node_id, headers


async def _collect(
    broker: Broker,
    node_id: uuid.UUID,
    into: asyncio.Queue[tuple[float, str, str]],
    ready: asyncio.Event,
) -> None:
    """Stamp every `server.status` the panel republishes on the node's channel."""
    async with broker.subscribe(keys.node_events_stream(str(node_id))) as messages:
        ready.set()
        async for message in messages:
            stamp = time.perf_counter()
            event = json.loads(message.data)
            if event.get("type") == "server.status":
                into.put_nowait((stamp, event.get("serverId", ""), event["data"]["status"]))


@asynccontextmanager
async def open_panel(
    host: str, work: Path, url: str, broker: Broker, ports: int
) -> AsyncIterator[Panel]:
    """Panel + Agent on one broker; every container of the bench's node removed at the end."""
    await migrate.upgrade(url)
    database = Database(url)
    node_id, headers = await _seed(database, ports)
    runtime = DockerRuntime(host, node_id=f"bench-{node_id.hex[:8]}")
    agent = Agent(
        DaemonSettings(data_dir=work / "daemon", node_id=str(node_id), runtime="docker"),
        broker,
        runtime=runtime,
    )
    app = create_app(PanelSettings(data_dir=work / "panel"), database=database, broker=broker)
    statuses: asyncio.Queue[tuple[float, str, str]] = asyncio.Queue()
    subscribed = asyncio.Event()
    collector = asyncio.create_task(_collect(broker, node_id, statuses, subscribed))
    await agent.start()
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://panel") as client:
                yield Panel(client, runtime, node_id, headers, statuses)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await agent.stop()
        for state in await runtime.list_managed():  # only after a failed run
            await runtime.remove(state.server_id)
        await runtime.close()
        await database.dispose()


async def _call(panel: Panel, method: str, path: str, body: object = None) -> dict[str, object]:
    """One API call that must succeed; its `data`."""
    response = await panel.client.request(
        method, f"/api/v1{path}", headers=panel.headers, json=body
    )
    if response.status_code >= 300:
        raise BenchFailed(f"{method} {path}: {response.status_code} {response.text[:300]}")
    data: dict[str, object] = response.json()["data"]
    return data


async def deploy(panel: Panel, index: int) -> tuple[str, float]:
    """`POST /servers` → RUNNING applied by the panel; the server id and milliseconds."""
    panel.drain()
    began = time.perf_counter()
    created = await _call(
        panel,
        "POST",
        "/servers",
        {"name": f"Bench {index}", "blueprint": GAME_BLUEPRINT_SLUG, "nodeId": str(panel.node_id)},
    )
    server = created["server"]
    assert isinstance(server, dict)
    server_id = str(server["id"])
    running = await panel.reaches(server_id, "running")
    shown = await _call(panel, "GET", f"/servers/{server_id}")
    if shown["status"] != "running":
        raise BenchFailed(f"server {server_id} is {shown['status']!r} in the API after RUNNING")
    return server_id, ms(began, running)


async def power(panel: Panel, server_id: str, action: str, status: str) -> tuple[float, float]:
    """A power action with `wait`: ms until the panel applied `status`, and until answered."""
    panel.drain()
    began = time.perf_counter()
    command = await _call(panel, "POST", f"/servers/{server_id}/{action}", {"wait": 10})
    answered = time.perf_counter()
    if command["status"] != "succeeded":
        raise BenchFailed(f"{action} of {server_id} did not succeed: {command}")
    applied = await panel.reaches(server_id, status)
    return ms(began, applied), ms(began, answered)


async def raw_power(docker: aiodocker.Docker, server_id: str) -> tuple[float, float]:
    """Raw Engine API start and stop of the server's container (ms each)."""
    container = await docker.containers.get(DockerRuntime.container_name(server_id))
    began = time.perf_counter()
    await container.start()
    started = time.perf_counter()
    await container.stop(t=10)
    return ms(began, started), ms(started, time.perf_counter())


async def raw_create(docker: aiodocker.Docker) -> tuple[float, float]:
    """Raw `docker create` + `start` of the game image: ms to started, and to its ready line."""
    port = free_port()  # published on loopback and limited, as our runtime creates it
    config: dict[str, Any] = {
        "Image": GAME_IMAGE,
        "Cmd": ["sh", GAME_SCRIPT_PATH],
        "Env": [f"SERVER_PORT={port}"],
        "OpenStdin": True,
        "ExposedPorts": {f"{port}/tcp": {}},
        "HostConfig": {
            "PortBindings": {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
            "Memory": 128 * 1024 * 1024,
            "PidsLimit": 64,
        },
    }
    name = f"stellar-bench-raw-{uuid.uuid4().hex[:10]}"
    began = time.perf_counter()
    container = await docker.containers.create(config, name=name)
    try:
        await container.start()
        started = time.perf_counter()
        async with asyncio.timeout(STEP_TIMEOUT):
            async for line in container.log(stdout=True, follow=True):
                if READY_LINE in line:
                    return ms(began, started), ms(began, time.perf_counter())
        raise BenchFailed("the raw game container ended before its ready line")
    finally:
        await container.delete(force=True)


@dataclass
class Stack:
    """Where the panel keeps its state: a database URL and a broker, and how to stop them."""

    name: str
    url: str
    broker: Broker
    stop: Callable[[], None] = lambda: None


def open_stack(work: Path, postgres_redis: bool) -> Stack:
    """SQLite in `work` + in-process broker, or a fresh PostgreSQL and Redis when asked."""
    if not postgres_redis:
        url = f"sqlite+aiosqlite:///{work / 'panel.db'}"
        return Stack("SQLite + in-process broker", url, MemoryBroker())
    postgres, reason = start_postgres()
    if postgres is None:
        raise BenchFailed(f"cannot start PostgreSQL: {reason}")
    redis, reason = start_redis()
    if redis is None:
        postgres.stop()
        raise BenchFailed(f"cannot start redis-server: {reason}")

    def stop() -> None:
        redis.stop()
        postgres.stop()

    url = postgres.url(postgres.create_database())
    return Stack("PostgreSQL + Redis", url, RedisBroker(redis.url), stop)


async def measure(
    panel: Panel, docker: aiodocker.Docker, figures: Figures, deployed: list[str]
) -> None:
    """Deploy each server beside a raw create, then its interleaved power rounds."""
    await raw_create(docker)  # warm-up: image layers and engine caches
    for index in range(figures.servers):
        created, ready = await raw_create(docker)
        figures.raw_create_start.append(created)
        figures.raw_create_ready.append(ready)
        server_id, took = await deploy(panel, index)
        deployed.append(server_id)
        figures.deploy.append(took)
        await power(panel, server_id, "stop", "stopped")
        for _ in range(figures.rounds):  # interleaved, so drift hits both sides alike
            raw_start, raw_stop = await raw_power(docker, server_id)
            figures.raw_start.append(raw_start)
            figures.raw_stop.append(raw_stop)
            for action, status in (("start", "running"), ("stop", "stopped")):
                applied, answered = await power(panel, server_id, action, status)
                figures.applied[action].append(applied)
                figures.answered[action].append(answered)


async def delete_all(panel: Panel, deployed: list[str]) -> list[str]:
    """Delete every deployed server through the API; what went wrong, if anything."""
    problems = []
    for server_id in deployed:
        try:
            await _call(panel, "DELETE", f"/servers/{server_id}")
        except BenchFailed as exc:
            problems.append(str(exc))
    leftover = len(await panel.runtime.list_managed())
    if leftover:
        problems.append(f"{leftover} containers outlived their servers")
    return problems


async def run(host: str, stack: Stack, *, servers: int, rounds: int) -> Figures:
    """Deploy, power-cycle and delete `servers` servers on the engine at `host`; the figures.

    The stack's broker is closed at the end; stopping its services is the caller's.
    """
    problem = build_game_image(host)
    if problem:
        raise BenchFailed(problem)
    figures = Figures(stack.name, servers, rounds)
    deployed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="stellar-bench-") as tmp:
            async with (
                aiodocker.Docker(url=host) as docker,
                open_panel(host, Path(tmp), stack.url, stack.broker, servers) as panel,
            ):
                try:
                    await measure(panel, docker, figures, deployed)
                finally:
                    problems = await delete_all(panel, deployed)
    finally:
        await stack.broker.close()
    if problems:
        raise BenchFailed("; ".join(problems))
    return figures


def _row(label: str, floor: float | None, ours: float | None, note: str = "") -> str:
    """One table line: milliseconds on each side and ours/floor when both are there."""
    left = f"{floor:>20.1f} ms" if floor is not None else f"{'':>23}"
    right = f"{ours:>15.1f} ms" if ours is not None else f"{'':>18}"
    ratio = f"{ours / floor:>8.2f}x" if floor and ours is not None else f"{'':>9}"
    return f"  {label:<38}{left}{right}{ratio}  {note}".rstrip()


def table(figures: Figures) -> list[str]:
    """The printed report: deployment times (absolute) and start/stop ratios to the floor."""
    p50 = statistics.median
    lines = [
        f"deployment on Docker, {figures.stack}: {figures.servers} servers, "
        f"{figures.rounds} power rounds each",
        f"  {'':<38}{'floor (raw engine)':>23}{'ours (panel API)':>18}{'ratio':>9}",
        _row("docker create + start p50", p50(figures.raw_create_start), None),
        _row(
            f"POST /servers → RUNNING p50 (n={len(figures.deploy)})",
            p50(figures.raw_create_ready),
            p50(figures.deploy),
            "floor: create + start → ready line; no target",
        ),
        _row(
            "POST /servers → RUNNING max",
            max(figures.raw_create_ready),
            max(figures.deploy),
        ),
    ]
    for action, raw, status in (
        ("start", figures.raw_start, "RUNNING"),
        ("stop", figures.raw_stop, "OFFLINE"),
    ):
        ours = figures.ours(action)
        if ours:
            verdict = "ok" if p50(ours) / p50(raw) <= TARGET_RATIO else "ABOVE TARGET"
            label = f"{action} → {status} p50 (n={len(ours)})"
            note = f"target ≤ {TARGET_RATIO}x: {verdict}"
            lines.append(_row(label, p50(raw), p50(ours), note))
            lines.append(_row("  status applied p50", None, p50(figures.applied[action])))
            lines.append(_row("  API answered (wait) p50", None, p50(figures.answered[action])))
    return lines


def main() -> None:
    """Parse the arguments, run once and print the table; exit non-zero if the run failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=5, help="servers to deploy (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="start/stop rounds per server")
    parser.add_argument("--postgres-redis", action="store_true", help="PostgreSQL + Redis")
    args = parser.parse_args()
    if args.servers < 1 or args.rounds < 0:
        parser.error("--servers must be at least 1 and --rounds not negative")
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    engine, reason = start_docker()
    if engine is None:
        raise SystemExit(f"deploy bench: no Docker Engine: {reason}")
    try:
        with tempfile.TemporaryDirectory(prefix="stellar-bench-db-") as work:
            stack = open_stack(Path(work), args.postgres_redis)
            try:
                coro = run(engine.host, stack, servers=args.servers, rounds=args.rounds)
                figures = asyncio.run(coro)
            finally:
                stack.stop()
    except BenchFailed as exc:
        raise SystemExit(f"deploy bench failed: {exc}") from None
    finally:
        engine.stop()
    print("\n".join(table(figures)))


if __name__ == "__main__":
    main()
