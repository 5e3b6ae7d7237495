"""Start and restart carry the server's current ServerSpec (what PATCH saved), stop and kill
carry none, and a server whose blueprint no longer renders still starts — through the API on
SQLite + in-process broker and PostgreSQL + Redis; and end to end on a real daemon in Docker:
an edit reaches the container at the next restart, no edit keeps the container."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aiodocker
import pytest
import sqlalchemy as sa

from stellarstack.panel.db.enums import CommandStatus, ServerStatus
from stellarstack.panel.db.models import NodeCommand
from stellarstack.protocol.commands import ServerPowerPayload
from tests.panel.servers_power import test_lifecycle_docker as lifecycle
from tests.panel.servers_power.conftest import Scene, Stage, new_scene, queued_commands
from tests.panel.servers_power.test_lifecycle_docker import Rig, reaches
from tests.support.game_image import GAME_BLUEPRINT_SLUG
from tests.support.services import DockerEngine

rig = lifecycle.rig  # panel + daemon Agent on Docker, one broker


async def finish(stage: Stage, command_id: str) -> None:
    """Mark a command finished, as the daemon's result would."""
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(NodeCommand)
            .where(NodeCommand.id == uuid.UUID(command_id))
            .values(status=CommandStatus.SUCCEEDED, finished_at=datetime.now(UTC))
        )
        await db.commit()


async def power(stage: Stage, scene: Scene, action: str) -> ServerPowerPayload:
    """Send one power action as the owner; the payload the daemon reads."""
    response = await stage.client.post(scene.path(action), headers=scene.headers["owner"])
    assert response.status_code == 202, response.text
    command_id = response.json()["data"]["id"]
    await finish(stage, command_id)
    sent = [c for c in await queued_commands(stage, scene.node_id) if c.id == command_id]
    return sent[0].payload_as(ServerPowerPayload)


async def test_a_restart_after_an_edit_carries_the_new_memory_and_variable(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    scene = await new_scene(stage, blueprint_id=game_blueprint)
    before = await power(stage, scene, "start")
    assert before.spec is not None
    assert before.spec.server_id == str(scene.server_id)
    edit = {"memoryMb": before.spec.limits.memory_mb + 64, "variables": {"WORLD_NAME": "beta"}}
    saved = await stage.client.patch(
        f"/api/v1/servers/{scene.server_id}", json=edit, headers=scene.headers["owner"]
    )
    assert saved.status_code == 200, saved.text
    after = await power(stage, scene, "restart")
    assert after.spec is not None
    assert after.spec.limits.memory_mb == edit["memoryMb"]
    assert after.spec.env["WORLD_NAME"] == "beta"
    assert after.spec.env["SERVER_MEMORY"] == str(edit["memoryMb"])
    assert after.spec.install is None  # the install script stays with the daemon
    assert after.spec.deployment_id is None
    assert after.spec.image == before.spec.image


async def test_stop_and_kill_carry_no_spec(stage: Stage, game_blueprint: uuid.UUID) -> None:
    scene = await new_scene(stage, blueprint_id=game_blueprint)
    for action in ("stop", "kill"):
        sent = await power(stage, scene, action)
        assert sent.spec is None
        assert sent.to_wire() == {"serverId": str(scene.server_id)}


async def test_a_server_whose_blueprint_no_longer_renders_still_starts_without_a_spec(
    stage: Stage,
) -> None:
    scene = await new_scene(stage)  # the factory's blueprint has no renderable definition
    for action in ("start", "restart"):
        sent = await power(stage, scene, action)
        assert sent.spec is None
        assert sent.to_wire() == {"serverId": str(scene.server_id)}


async def memory_of(engine: DockerEngine, container_id: str) -> int:
    """The container's memory limit as the engine reports it."""
    async with aiodocker.Docker(url=engine.host) as docker:
        container = await docker.containers.get(container_id)
        memory: int = container._container["HostConfig"]["Memory"]
        return memory


@pytest.mark.docker
async def test_an_edit_reaches_the_container_at_the_next_restart_and_no_edit_keeps_it(
    rig: Rig, docker_engine: DockerEngine
) -> None:
    created = await rig.client.post(
        "/api/v1/servers",
        headers=rig.headers,
        json={"name": "Edited", "blueprint": GAME_BLUEPRINT_SLUG, "nodeId": str(rig.node_id)},
    )
    assert created.status_code in (201, 202), created.text
    server_id = created.json()["data"]["server"]["id"]
    row = await reaches(rig, server_id, ServerStatus.RUNNING)
    first = await rig.runtime.status(server_id)
    assert await memory_of(docker_engine, first.container_id) == row.memory_mb << 20

    async def restart() -> None:
        done = await rig.client.post(
            f"/api/v1/servers/{server_id}/restart", headers=rig.headers, json={"wait": 10}
        )
        assert done.status_code in (200, 202), done.text
        assert done.json()["data"]["status"] == "succeeded", done.text
        await reaches(rig, server_id, ServerStatus.RUNNING)

    await restart()  # nothing edited: the settings the server was made with
    assert (await rig.runtime.status(server_id)).container_id == first.container_id

    grown = row.memory_mb + 128
    saved = await rig.client.patch(
        f"/api/v1/servers/{server_id}",
        headers=rig.headers,
        json={"memoryMb": grown, "variables": {"WORLD_NAME": "beta"}},
    )
    assert saved.status_code == 200, saved.text
    await restart()
    second = await rig.runtime.status(server_id)
    assert second.container_id != first.container_id
    assert await memory_of(docker_engine, second.container_id) == grown << 20
    output = "\n".join(line.text for line in await rig.runtime.logs(server_id, tail=200))
    assert "Preparing world beta" in output
