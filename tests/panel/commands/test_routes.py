"""The commands API: who sees a command, who may send one, refusals, ping and health probe."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from stellarstack.daemon.agent import Agent
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.settings import DaemonSettings
from tests.panel.commands.conftest import World
from tests.support.services import free_port


async def start_server_command(admin: httpx.AsyncClient, world: World) -> str:
    response = await admin.post(
        f"/api/v1/nodes/{world.node_a}/commands",
        json={"type": "server.start", "payload": {"serverId": str(world.server_a)}, "ttl": 60},
    )
    assert response.status_code == 202, response.text
    body = response.json()["data"]
    assert body["status"] == "queued" and body["serverId"] == str(world.server_a)
    return str(body["id"])


async def test_a_command_is_visible_to_admins_and_its_servers_owner_only(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    owner: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
    world: World,
) -> None:
    command_id = await start_server_command(admin, world)
    assert (await admin.get(f"/api/v1/commands/{command_id}")).status_code == 200
    mine = await owner.get(f"/api/v1/commands/{command_id}")
    assert mine.status_code == 200 and mine.json()["data"]["type"] == "server.start"
    assert (await stranger.get(f"/api/v1/commands/{command_id}")).status_code == 404
    assert (await client.get(f"/api/v1/commands/{command_id}")).status_code == 401
    assert (await admin.get("/api/v1/commands/not-a-uuid")).status_code == 422


async def test_only_admins_may_send_commands(owner: httpx.AsyncClient, world: World) -> None:
    response = await owner.post(
        f"/api/v1/nodes/{world.node_a}/commands", json={"type": "node.ping"}
    )
    assert response.status_code == 403


async def test_hostile_command_bodies_get_clear_4xx(admin: httpx.AsyncClient, world: World) -> None:
    url = f"/api/v1/nodes/{world.node_a}/commands"
    too_big = await admin.post(url, json={"type": "node.update", "payload": {"x": "y" * 5000}})
    assert too_big.status_code == 413 and "limit" in too_big.json()["error"]["detail"]
    assert (await admin.post(url, json={"type": "<script>alert(1)</script>"})).status_code == 422
    assert (await admin.post(url, json={"type": "node.ping", "payload": [1, 2]})).status_code == 422
    assert (await admin.post(url, json={"type": "node.ping", "ttl": -5})).status_code == 422
    assert (
        await admin.post(url, content=b"{not json", headers={"content-type": "application/json"})
    ).status_code in (400, 422)
    other_nodes_server = {"type": "server.kill", "payload": {"serverId": str(world.server_b)}}
    assert (await admin.post(url, json=other_nodes_server)).status_code == 422
    missing = await admin.post(
        "/api/v1/nodes/00000000-0000-4000-8000-000000000000/commands", json={"type": "node.ping"}
    )
    assert missing.status_code == 404


async def test_a_ping_travels_to_the_daemon_and_back(
    panel_app: FastAPI, admin: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    app = panel_app
    settings = DaemonSettings(
        data_dir=tmp_path / "daemon", node_id=str(world.node_a), runtime="process"
    )
    agent = Agent(settings, app.state.broker, stop_grace=5)
    await agent.start()
    app.state.background.ingest.refresh()
    try:
        response = await admin.post(f"/api/v1/nodes/{world.node_a}/ping", params={"wait": 8})
    finally:
        await agent.stop()
    body = response.json()["data"]
    assert response.status_code == 200 and body["status"] == "succeeded"
    assert body["result"]["pong"] is True


async def test_probing_a_dead_daemon_answers_503_and_then_fast(
    admin: httpx.AsyncClient, panel_database: Database, world: World
) -> None:
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(Node)
            .where(Node.id == world.node_a)
            .values(scheme="http", fqdn="127.0.0.1", port=free_port())
        )
        await db.commit()
    url = f"/api/v1/nodes/{world.node_a}/health"
    for _ in range(3):
        failed = await admin.get(url)
        assert failed.status_code == 503 and "not answering" in failed.json()["error"]["detail"]
    started = time.perf_counter()
    fast = await admin.get(url)
    assert fast.status_code == 503 and int(fast.headers["retry-after"]) >= 1
    assert time.perf_counter() - started < 0.5
