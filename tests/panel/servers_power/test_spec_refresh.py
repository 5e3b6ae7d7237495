"""Start and restart carry the server's current ServerSpec (what PATCH saved), stop and kill
carry none, and a server whose blueprint no longer renders still starts — through the API on
SQLite + in-process broker and PostgreSQL + Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from stellarstack.panel.db.enums import CommandStatus
from stellarstack.panel.db.models import NodeCommand
from stellarstack.protocol.commands import ServerPowerPayload
from tests.panel.servers_power.conftest import Scene, Stage, new_scene, queued_commands


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
