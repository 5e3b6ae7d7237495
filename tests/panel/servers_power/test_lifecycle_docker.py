"""The whole lifecycle through the API, on a real daemon Agent running the test game in Docker.

Panel (SQLite) and daemon share one in-process broker, as on `stellarstack up`: every status
the test waits for travelled daemon → event stream → the panel's consumer → `apply_event`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import MemoryBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.runtime import DockerRuntime
from stellarstack.panel.app import create_app
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import BlueprintSource, DeploymentStatus, ServerStatus
from stellarstack.panel.db.models import Allocation, AuditLog, Deployment, Server
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.service import save_blueprint
from stellarstack.settings import DaemonSettings, PanelSettings
from tests.panel.admin.world import add_user, session_for
from tests.panel.db.factories import make_node
from tests.support.game_image import GAME_BLUEPRINT_SLUG, build_game_image, game_blueprint_yaml
from tests.support.services import DockerEngine, free_port, require

pytestmark = pytest.mark.docker


@dataclass
class Rig:
    """A panel and a daemon on one broker, and the owner's credentials."""

    database: Database
    client: httpx.AsyncClient
    runtime: DockerRuntime
    node_id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture
async def rig(docker_engine: DockerEngine, tmp_path: Path) -> AsyncIterator[Rig]:
    """Panel + Agent (Docker runtime) sharing a MemoryBroker; containers removed at the end."""
    problem = build_game_image(docker_engine.host)
    require(problem is None, problem or "")
    url = f"sqlite+aiosqlite:///{tmp_path / 'panel.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    owner = await add_user(database, "player@example.test")
    async with database.sessionmaker() as db:
        node = make_node(f"docker-{uuid.uuid4().hex[:6]}")
        db.add(node)
        await db.flush()
        db.add(Allocation(node_id=node.id, ip="127.0.0.1", port=free_port()))
        spec = BlueprintSpec.from_yaml(game_blueprint_yaml())
        await save_blueprint(
            db, spec, source=BlueprintSource.OPERATOR, source_ref=None, source_hash=None
        )
        await db.commit()
        node_id = node.id
    headers = await session_for(database, owner)
    broker = MemoryBroker()
    runtime = DockerRuntime(docker_engine.host, node_id=f"test-{node_id.hex[:8]}")
    daemon_settings = DaemonSettings(
        data_dir=tmp_path / "daemon", node_id=str(node_id), runtime="docker"
    )
    agent = Agent(daemon_settings, broker, runtime=runtime)
    app = create_app(PanelSettings(data_dir=tmp_path / "panel"), database=database, broker=broker)
    await agent.start()
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://panel") as client:
                yield Rig(database, client, runtime, node_id, headers)
    finally:
        await agent.stop()
        for state in await runtime.list_managed():
            await runtime.remove(state.server_id)
        await runtime.close()
        await broker.close()
        await database.dispose()


async def server_row(rig: Rig, server_id: str) -> Server:
    """A fresh copy of the server."""
    async with rig.database.sessionmaker() as db:
        return await db.get_one(Server, uuid.UUID(server_id))


async def reaches(rig: Rig, server_id: str, status: ServerStatus, seconds: float = 60) -> Server:
    """Wait until the panel's row shows `status` (applied from the daemon's events)."""
    async with asyncio.timeout(seconds):
        while (row := await server_row(rig, server_id)).status != status:
            await asyncio.sleep(0.05)
    return row


async def power(rig: Rig, server_id: str, action: str) -> dict[str, object]:
    """A power action (or reinstall) through the API; the daemon's outcome when it has one."""
    body = {"wait": 10} if action != "reinstall" else None
    response = await rig.client.post(
        f"/api/v1/servers/{server_id}/{action}", headers=rig.headers, json=body
    )
    assert response.status_code in (200, 202), response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_deploy_stop_start_restart_crash_kill_and_reinstall_on_docker(rig: Rig) -> None:
    created = await rig.client.post(
        "/api/v1/servers",
        headers=rig.headers,
        json={"name": "Lifecycle", "blueprint": GAME_BLUEPRINT_SLUG, "nodeId": str(rig.node_id)},
    )
    assert created.status_code in (201, 202), created.text
    server_id = created.json()["data"]["server"]["id"]
    row = await reaches(rig, server_id, ServerStatus.RUNNING)
    assert row.installed_at is not None and row.status_changed_at is not None
    assert (await rig.runtime.status(server_id)).running

    stopped = await power(rig, server_id, "stop")
    assert stopped["status"] == "succeeded", stopped
    await reaches(rig, server_id, ServerStatus.OFFLINE)
    assert not (await rig.runtime.status(server_id)).running

    assert (await power(rig, server_id, "start"))["status"] == "succeeded"
    await reaches(rig, server_id, ServerStatus.RUNNING)
    assert (await power(rig, server_id, "restart"))["status"] == "succeeded"
    await reaches(rig, server_id, ServerStatus.RUNNING)

    await rig.runtime.send_input(server_id, "crash\n")  # the game exits 3 on its own
    crashed = await reaches(rig, server_id, ServerStatus.CRASHED, seconds=30)
    assert crashed.crash_count == 1 and crashed.last_crash_at is not None
    await reaches(rig, server_id, ServerStatus.RUNNING)  # restarted after its backoff

    assert (await power(rig, server_id, "kill"))["status"] == "succeeded"
    await reaches(rig, server_id, ServerStatus.OFFLINE)

    deployment = await power(rig, server_id, "reinstall")
    assert deployment["kind"] == "reinstall"
    async with asyncio.timeout(60):
        while True:
            async with rig.database.sessionmaker() as db:
                done = await db.get_one(Deployment, uuid.UUID(str(deployment["id"])))
            if done.status in (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED):
                break
            await asyncio.sleep(0.05)
    assert (done.status, done.progress, done.error) == (DeploymentStatus.SUCCEEDED, 100, None)
    assert (await server_row(rig, server_id)).status == ServerStatus.OFFLINE  # was offline

    async with rig.database.sessionmaker() as db:
        actions = set(
            await db.scalars(sa.select(AuditLog.action).where(AuditLog.resource_id == server_id))
        )
    assert {
        "server.power.stop",
        "server.power.start",
        "server.power.restart",
        "server.power.kill",
        "server.reinstall",
    } <= actions
