"""`POST /api/v1/servers/{id}/start|stop|restart|kill`: what is queued, for whom, and refusals."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from stellarstack.panel.db.enums import AuditStatus, CommandStatus, NodeStatus, ServerStatus
from stellarstack.panel.db.models import NodeCommand, Subuser
from stellarstack.panel.domain.events.apply import apply_event
from stellarstack.protocol.commands import CommandStatus as Outcome
from stellarstack.protocol.events import CommandResult, Event
from tests.panel.servers_power.conftest import (
    Stage,
    audit_actions,
    command_row,
    new_scene,
    queued_commands,
)

ACTIONS = ("start", "stop", "restart", "kill")


async def finish(stage: Stage, command_id: str) -> None:
    """Mark a command finished, as the daemon's result would."""
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(NodeCommand)
            .where(NodeCommand.id == uuid.UUID(command_id))
            .values(status=CommandStatus.SUCCEEDED, finished_at=datetime.now(UTC))
        )
        await db.commit()


async def test_each_power_action_queues_its_command_for_the_servers_node(stage: Stage) -> None:
    scene = await new_scene(stage)
    sent: list[str] = []
    for action in ACTIONS:
        response = await stage.client.post(scene.path(action), headers=scene.headers["owner"])
        assert response.status_code == 202, response.text
        body = response.json()["data"]
        assert body["type"] == f"server.{action}"
        assert body["status"] == "queued"
        assert body["serverId"] == str(scene.server_id)
        assert body["nodeId"] == str(scene.node_id)
        sent.append(body["id"])
        await finish(stage, body["id"])
    on_stream = await queued_commands(stage, scene.node_id)
    assert [c.id for c in on_stream] == sent
    assert [c.type for c in on_stream] == [f"server.{a}" for a in ACTIONS]
    assert all(c.payload["serverId"] == str(scene.server_id) for c in on_stream)
    assert all(c.expires_at - c.timestamp == pytest.approx(60) for c in on_stream)
    entries = await audit_actions(stage, scene.server_id)
    assert [e.action for e in entries] == [f"server.power.{a}" for a in ACTIONS]
    assert all(e.user_id == scene.owner_id and e.status == AuditStatus.SUCCESS for e in entries)
    assert entries[0].details == {"commandId": sent[0], "nodeId": str(scene.node_id)}


async def test_a_second_power_action_while_one_is_on_its_way_is_refused(stage: Stage) -> None:
    scene = await new_scene(stage)
    first = await stage.client.post(scene.path("stop"), headers=scene.headers["owner"])
    assert first.status_code == 202
    for action in ACTIONS:
        busy = await stage.client.post(scene.path(action), headers=scene.headers["owner"])
        assert busy.status_code == 409, busy.text
        assert "Another power action is in progress (stop" in busy.json()["error"]["detail"]
    assert len(await queued_commands(stage, scene.node_id)) == 1
    entries = await audit_actions(stage, scene.server_id)
    refusals = [e for e in entries if e.status == AuditStatus.FAILURE]
    assert len(refusals) == 4
    assert all("in progress" in (e.error or "") for e in refusals)
    await finish(stage, first.json()["data"]["id"])
    again = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    assert again.status_code == 202


async def test_a_command_past_its_expiry_no_longer_blocks_power(stage: Stage) -> None:
    scene = await new_scene(stage)
    first = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(NodeCommand)
            .where(NodeCommand.id == uuid.UUID(first.json()["data"]["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    second = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    assert second.status_code == 202, second.text


async def test_racing_power_requests_queue_exactly_one_command(stage: Stage) -> None:
    scene = await new_scene(stage)
    responses = await asyncio.gather(
        *(
            stage.client.post(scene.path(action), headers=scene.headers["owner"])
            for action in ACTIONS * 2
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 7, [r.text for r in responses]
    assert len(await queued_commands(stage, scene.node_id)) == 1


async def test_a_suspended_server_refuses_every_power_action(stage: Stage) -> None:
    scene = await new_scene(stage, suspended=True)
    for action in ACTIONS:
        response = await stage.client.post(scene.path(action), headers=scene.headers["owner"])
        assert response.status_code == 409
        assert "suspended" in response.json()["error"]["detail"]
    assert await queued_commands(stage, scene.node_id) == []


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (ServerStatus.INSTALLING, "still installing"),
        (ServerStatus.REINSTALLING, "still installing"),
        (ServerStatus.INSTALL_FAILED, "reinstall it"),
    ],
)
async def test_a_server_without_a_finished_install_refuses_power(
    stage: Stage, status: ServerStatus, words: str
) -> None:
    scene = await new_scene(stage, status=status)
    response = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    assert response.status_code == 409
    assert words in response.json()["error"]["detail"]
    assert await queued_commands(stage, scene.node_id) == []


@pytest.mark.parametrize("node_status", [NodeStatus.OFFLINE, NodeStatus.UNHEALTHY])
async def test_an_unreachable_node_answers_503_with_retry_after_and_sends_nothing(
    stage: Stage, node_status: NodeStatus
) -> None:
    scene = await new_scene(stage, node_status=node_status)
    response = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert node_status.value in response.json()["error"]["detail"]
    assert await queued_commands(stage, scene.node_id) == []


async def test_a_node_in_maintenance_refuses_with_409(stage: Stage) -> None:
    scene = await new_scene(stage, node_status=NodeStatus.MAINTENANCE)
    response = await stage.client.post(scene.path("stop"), headers=scene.headers["owner"])
    assert response.status_code == 409
    assert "maintenance" in response.json()["error"]["detail"]


async def test_a_draining_node_still_takes_power_actions(stage: Stage) -> None:
    scene = await new_scene(stage, node_status=NodeStatus.DRAINING)
    response = await stage.client.post(scene.path("stop"), headers=scene.headers["owner"])
    assert response.status_code == 202


async def test_subusers_get_exactly_the_power_actions_they_were_granted(stage: Stage) -> None:
    scene = await new_scene(stage)  # helper: view + power.start; watcher: console only
    for action in ("stop", "restart", "kill"):
        denied = await stage.client.post(scene.path(action), headers=scene.headers["helper"])
        assert denied.status_code == 403
        assert f"server.power.{action}" in denied.json()["error"]["detail"]
    watcher = await stage.client.post(scene.path("start"), headers=scene.headers["watcher"])
    assert watcher.status_code == 403
    stranger = await stage.client.post(scene.path("kill"), headers=scene.headers["stranger"])
    assert stranger.status_code == 404  # another user's server does not exist for them
    assert await queued_commands(stage, scene.node_id) == []
    allowed = await stage.client.post(scene.path("start"), headers=scene.headers["helper"])
    assert allowed.status_code == 202


async def test_a_moderator_may_power_any_server_and_is_audited_as_themself(stage: Stage) -> None:
    scene = await new_scene(stage)
    response = await stage.client.post(scene.path("kill"), headers=scene.headers["moderator"])
    assert response.status_code == 202
    [entry] = await audit_actions(stage, scene.server_id)
    assert entry.action == "server.power.kill"
    assert entry.user_id != scene.owner_id


async def test_an_anonymous_caller_gets_401(stage: Stage) -> None:
    scene = await new_scene(stage)
    response = await stage.client.post(scene.path("start"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "server_ref",
    [
        str(uuid.uuid4()),
        "..%2F..%2Fadmin",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "x" * 65,
        "0" * 12,
    ],
)
async def test_unknown_or_hostile_server_ids_are_404_or_422(stage: Stage, server_ref: str) -> None:
    scene = await new_scene(stage)
    response = await stage.client.post(
        f"/api/v1/servers/{server_ref}/start", headers=scene.headers["owner"]
    )
    assert response.status_code in (404, 422)
    assert "json" in response.headers["content-type"]  # never echoed back as HTML
    assert await queued_commands(stage, scene.node_id) == []


@pytest.mark.parametrize("wait", [-1, 10.5, "soon", None, float("inf")])
async def test_a_bad_wait_is_a_422_and_sends_nothing(stage: Stage, wait: object) -> None:
    scene = await new_scene(stage)
    content = '{"wait": Infinity}' if wait == float("inf") else None
    if content is not None:
        response = await stage.client.post(
            scene.path("start"),
            headers={**scene.headers["owner"], "content-type": "application/json"},
            content=content,
        )
    else:
        response = await stage.client.post(
            scene.path("start"), headers=scene.headers["owner"], json={"wait": wait}
        )
    assert response.status_code == 422, response.text
    assert await queued_commands(stage, scene.node_id) == []


async def _answer_as_the_daemon(stage: Stage, node_id: uuid.UUID, outcome: Outcome) -> None:
    """Take the newest command off the node's stream and apply its result event.

    Applied as the event consumer applies it (`apply_event`), without waiting for the
    consumer's blocking read to pick up this brand-new node's stream.
    """
    command = (await queued_commands(stage, node_id))[-1]
    result = CommandResult(
        command_id=command.id,
        command_type=command.type,
        status=outcome,
        error="the server is not running" if outcome is Outcome.FAILED else None,
    )
    event = Event.create(result, node_id=str(node_id))
    async with stage.database.sessionmaker() as db:
        await apply_event(
            db, node_id, event, seen_at=datetime.now(UTC), fresh_within=timedelta(seconds=90)
        )
        await db.commit()


async def test_waiting_returns_the_finished_command_when_the_daemon_answers(
    stage: Stage,
) -> None:
    scene = await new_scene(stage)

    async def daemon() -> None:
        while not await queued_commands(stage, scene.node_id):
            await asyncio.sleep(0.02)
        await _answer_as_the_daemon(stage, scene.node_id, Outcome.FAILED)

    answering = asyncio.create_task(daemon())
    response = await stage.client.post(
        scene.path("stop"), headers=scene.headers["owner"], json={"wait": 8}
    )
    await answering
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["status"] == "failed"
    assert body["error"] == "the server is not running"
    # the audit entry was committed before the wait, and the server is free again
    assert [e.action for e in await audit_actions(stage, scene.server_id)] == ["server.power.stop"]
    again = await stage.client.post(scene.path("start"), headers=scene.headers["owner"])
    assert again.status_code == 202


async def test_waiting_without_an_answer_returns_202_with_the_queued_command(
    stage: Stage,
) -> None:
    scene = await new_scene(stage)
    response = await stage.client.post(
        scene.path("restart"), headers=scene.headers["owner"], json={"wait": 0.3}
    )
    assert response.status_code == 202
    body = response.json()["data"]
    assert body["status"] == "queued"
    row = await command_row(stage, body["id"])
    assert row.type == "server.restart"


async def test_a_subuser_loses_power_the_moment_the_permission_is_revoked(stage: Stage) -> None:
    scene = await new_scene(stage)  # helper holds server.power.start
    first = await stage.client.post(scene.path("start"), headers=scene.headers["helper"])
    assert first.status_code == 202
    await finish(stage, first.json()["data"]["id"])
    async with stage.database.sessionmaker() as db:
        await db.execute(
            sa.update(Subuser)
            .where(Subuser.server_id == scene.server_id, Subuser.user_id != scene.owner_id)
            .values(permissions=["server.view"])
        )
        await db.commit()
    again = await stage.client.post(scene.path("start"), headers=scene.headers["helper"])
    assert again.status_code == 403
    async with stage.database.sessionmaker() as db:
        await db.execute(sa.delete(Subuser).where(Subuser.server_id == scene.server_id))
        await db.commit()
    gone = await stage.client.post(scene.path("start"), headers=scene.headers["helper"])
    assert gone.status_code == 404
    assert len(await queued_commands(stage, scene.node_id)) == 1
