"""`POST /api/v1/servers/{id}/reinstall`: a new deployment, REINSTALLING, a fresh ServerSpec."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from stellarstack.panel.db.enums import AuditStatus, NodeStatus, ServerStatus
from stellarstack.panel.db.models import Deployment, Server, ServerVariable
from stellarstack.protocol.servers import ServerSpec
from tests.panel.servers_power.conftest import Stage, audit_actions, new_scene, queued_commands


async def _server(stage: Stage, server_id: uuid.UUID) -> Server:
    async with stage.database.sessionmaker() as db:
        return await db.get_one(Server, server_id)


async def _deployments(stage: Stage, server_id: uuid.UUID) -> list[Deployment]:
    async with stage.database.sessionmaker() as db:
        rows = await db.scalars(sa.select(Deployment).where(Deployment.server_id == server_id))
        return list(rows)


@pytest.mark.parametrize(
    ("before", "starts_after"), [(ServerStatus.RUNNING, True), (ServerStatus.OFFLINE, False)]
)
async def test_reinstall_sends_a_fresh_spec_under_a_new_deployment(
    stage: Stage, game_blueprint: uuid.UUID, before: ServerStatus, starts_after: bool
) -> None:
    scene = await new_scene(stage, status=before, blueprint_id=game_blueprint)
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 202, response.text
    body = response.json()["data"]
    assert (body["kind"], body["status"], body["serverId"]) == (
        "reinstall",
        "pending",
        str(scene.server_id),
    )
    [command] = await queued_commands(stage, scene.node_id)
    assert command.type == "server.reinstall"
    spec = command.payload_as(ServerSpec)
    assert spec.server_id == str(scene.server_id)
    assert spec.deployment_id == body["id"]
    assert spec.start_on_completion is starts_after
    assert spec.env["WORLD_NAME"].startswith("w")  # the server's own variable, not a default
    assert spec.stop.command == "stop"
    row = await _server(stage, scene.server_id)
    assert row.status == ServerStatus.REINSTALLING
    [deployment] = await _deployments(stage, scene.server_id)
    assert (deployment.kind.value, deployment.to_version_tag) == ("reinstall", "1.0")
    assert deployment.requested_by_id == scene.owner_id
    [entry] = await audit_actions(stage, scene.server_id)
    assert (entry.action, entry.status) == ("server.reinstall", AuditStatus.SUCCESS)


async def test_a_failed_install_can_be_reinstalled_and_its_error_is_cleared(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    scene = await new_scene(stage, status=ServerStatus.INSTALL_FAILED, blueprint_id=game_blueprint)
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(Server).where(Server.id == scene.server_id).values(install_error="exit 1")
        )
        await db.commit()
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 202
    row = await _server(stage, scene.server_id)
    assert (row.status, row.install_error) == (ServerStatus.REINSTALLING, None)


async def test_no_power_action_while_reinstalling_and_no_reinstall_while_busy(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    busy = await new_scene(stage, blueprint_id=game_blueprint)
    assert (await stage.client.post(busy.path("start"), headers=busy.headers["owner"])).is_success
    refused = await stage.client.post(busy.path("reinstall"), headers=busy.headers["owner"])
    assert refused.status_code == 409
    assert "in progress (start" in refused.json()["error"]["detail"]
    assert await _deployments(stage, busy.server_id) == []

    reinstalling = await new_scene(stage, blueprint_id=game_blueprint)
    headers = reinstalling.headers["owner"]
    assert (await stage.client.post(reinstalling.path("reinstall"), headers=headers)).is_success
    for action in ("start", "reinstall"):
        again = await stage.client.post(reinstalling.path(action), headers=headers)
        assert again.status_code == 409
        assert "still installing" in again.json()["error"]["detail"]
    assert len(await queued_commands(stage, reinstalling.node_id)) == 1


async def test_a_suspended_server_cannot_be_reinstalled(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    scene = await new_scene(stage, suspended=True, blueprint_id=game_blueprint)
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 409
    assert await _deployments(stage, scene.server_id) == []
    [entry] = await audit_actions(stage, scene.server_id)
    assert (entry.action, entry.status) == ("server.reinstall", AuditStatus.FAILURE)
    assert "suspended" in (entry.error or "")


async def test_reinstall_needs_its_own_permission(stage: Stage, game_blueprint: uuid.UUID) -> None:
    scene = await new_scene(
        stage,
        blueprint_id=game_blueprint,
        subuser_permissions=[
            "server.view",
            "server.power.start",
            "server.power.stop",
            "server.power.restart",
            "server.power.kill",
        ],
    )
    for who in ("helper", "moderator"):
        response = await stage.client.post(scene.path("reinstall"), headers=scene.headers[who])
        assert response.status_code == 403
        assert "server.reinstall" in response.json()["error"]["detail"]
    stranger = await stage.client.post(scene.path("reinstall"), headers=scene.headers["stranger"])
    assert stranger.status_code == 404
    assert await queued_commands(stage, scene.node_id) == []


async def test_an_unrenderable_blueprint_is_a_409_and_changes_nothing(stage: Stage) -> None:
    scene = await new_scene(stage, status=ServerStatus.RUNNING)  # factory blueprint: no startup
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 409, response.text
    assert "blueprint cannot be rendered" in response.json()["error"]["detail"]
    assert (await _server(stage, scene.server_id)).status == ServerStatus.RUNNING
    assert await _deployments(stage, scene.server_id) == []
    assert await queued_commands(stage, scene.node_id) == []


async def test_reinstall_on_an_offline_node_is_a_503_and_changes_nothing(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    scene = await new_scene(stage, node_status=NodeStatus.OFFLINE, blueprint_id=game_blueprint)
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert (await _server(stage, scene.server_id)).status == ServerStatus.OFFLINE
    assert await _deployments(stage, scene.server_id) == []


async def test_variables_that_no_longer_pass_the_rules_are_a_409_naming_them(
    stage: Stage, game_blueprint: uuid.UUID
) -> None:
    scene = await new_scene(stage, blueprint_id=game_blueprint)
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(ServerVariable)
            .where(ServerVariable.server_id == scene.server_id)
            .values(value="{{GAME_SCRIPT}}; rm -rf /")
        )
        await db.commit()
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 409, response.text
    assert "WORLD_NAME" in response.json()["error"]["detail"]
    assert await _deployments(stage, scene.server_id) == []
    assert await queued_commands(stage, scene.node_id) == []


@pytest.mark.parametrize("status", [ServerStatus.INSTALLING, ServerStatus.REINSTALLING])
async def test_a_server_stuck_installing_can_be_rescued_by_a_reinstall(
    stage: Stage, game_blueprint: uuid.UUID, status: ServerStatus
) -> None:
    # stuck: installing, but no install command of it is on its way (expired, or lost)
    scene = await new_scene(stage, status=status, blueprint_id=game_blueprint)
    response = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert response.status_code == 202, response.text
    # now one is on its way: a second reinstall waits for it
    again = await stage.client.post(scene.path("reinstall"), headers=scene.headers["owner"])
    assert again.status_code == 409
    [command] = await queued_commands(stage, scene.node_id)
    assert command.type == "server.reinstall"
