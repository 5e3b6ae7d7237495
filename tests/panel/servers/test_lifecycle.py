"""Reading, changing, deleting and suspending servers through the API, and who may."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from stellarstack.panel.db.enums import NodeStatus, Role
from stellarstack.panel.db.models import Server, Subuser
from stellarstack.panel.domain.commands.tracking import apply_result
from stellarstack.panel.domain.servers.service import ensure_not_suspended, load_server
from stellarstack.panel.errors import Conflict
from stellarstack.protocol import CommandResult
from stellarstack.protocol.commands import CommandStatus as Outcome
from tests.panel.servers.conftest import Caller, ServersPanel


async def _deploy(
    panel: ServersPanel,
    client: Caller,
    node: uuid.UUID,
    blueprint: str = "test-game",
    **extra: Any,
) -> dict[str, Any]:
    body = {"name": f"srv {uuid.uuid4().hex[:6]}", "blueprint": blueprint, "nodeId": str(node)}
    response = await client.post("/api/v1/servers", json={**body, **extra})
    assert response.status_code == 202, response.text
    server: dict[str, Any] = response.json()["data"]["server"]
    return server


@asynccontextmanager
async def daemon_answering(
    panel: ServersPanel, node: uuid.UUID, outcome: Outcome, error: str | None = None
) -> AsyncIterator[None]:
    """Answer each `server.delete` sent to `node` as its daemon would (via the result path)."""

    async def answer() -> None:
        answered: set[str] = set()
        while True:
            for command in await panel.commands_of(node):
                if command.type == "server.delete" and command.id not in answered:
                    result = CommandResult(
                        command_id=command.id,
                        command_type=command.type,
                        status=outcome,
                        error=error,
                    )
                    async with panel.database.sessionmaker() as db:
                        await apply_result(db, node, result, at=datetime.now(UTC))
                        await db.commit()
                    answered.add(command.id)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(answer())
    try:
        yield
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_viewers_see_their_servers_and_others_get_404(panel: ServersPanel) -> None:
    node = await panel.node([31001, 31002])
    owner, friend, stranger = await panel.user(), await panel.user(), await panel.user()
    support = await panel.user(Role.SUPPORT)
    server = await _deploy(panel, owner, node)
    async with panel.database.sessionmaker() as db:
        db.add(
            Subuser(
                user_id=friend.user_id,
                server_id=uuid.UUID(server["id"]),
                permissions=["server.view"],
            )
        )
        await db.commit()
    for ref in (server["id"], server["identifier"], server["identifier"].upper()):
        got = await owner.get(f"/api/v1/servers/{ref}")
        assert got.status_code == 200 and got.json()["data"]["id"] == server["id"]
    for who in (owner, friend, support):
        listed = await who.get("/api/v1/servers", params={"search": server["name"]})
        assert [s["id"] for s in listed.json()["data"]] == [server["id"]]
    assert (await stranger.get("/api/v1/servers")).json()["data"] == []
    for path in ("", "/deployments"):
        assert (await stranger.get(f"/api/v1/servers/{server['id']}{path}")).status_code == 404
    assert (await stranger.patch(f"/api/v1/servers/{server['id']}", json={})).status_code == 404
    assert (await stranger.delete(f"/api/v1/servers/{server['id']}")).status_code == 404
    assert (await owner.get(f"/api/v1/servers/{uuid.uuid4()}")).status_code == 404
    assert (await owner.get("/api/v1/servers/" + "x" * 65)).status_code == 422
    hostile = await owner.get("/api/v1/servers", params={"search": "%_\\' OR 1=1 --"})
    assert hostile.status_code == 200 and hostile.json()["data"] == []
    deployments = await friend.get(f"/api/v1/servers/{server['id']}/deployments")
    assert [d["kind"] for d in deployments.json()["data"]] == ["install"]


async def test_pages_of_the_list_carry_their_totals(panel: ServersPanel) -> None:
    node = await panel.node([31011, 31012, 31013])
    owner = await panel.user()
    for _ in range(3):
        await _deploy(panel, owner, node)
    page = await owner.get("/api/v1/servers", params={"page": 2, "perPage": 2})
    assert page.status_code == 200 and len(page.json()["data"]) == 1
    assert page.json()["meta"]["pagination"]["total"] == 3
    assert (await owner.get("/api/v1/servers", params={"perPage": 0})).status_code == 422


async def test_an_update_is_checked_like_a_deployment(panel: ServersPanel) -> None:
    node = await panel.node([31021, 31022])
    owner = await panel.user(max_memory_mb=1024)
    server = await _deploy(panel, owner, node, "talky")
    url = f"/api/v1/servers/{server['id']}"
    renamed = await owner.patch(url, json={"name": "  Renamed  ", "description": "mine"})
    assert renamed.status_code == 200 and renamed.json()["data"]["name"] == "Renamed"
    assert renamed.json()["meta"]["restartRequired"] is False
    grown = await owner.patch(url, json={"memoryMb": 512, "variables": {"MOTD": "new"}})
    assert grown.status_code == 200 and grown.json()["data"]["memoryMb"] == 512
    assert (
        grown.json()["meta"]["restartRequired"] is True and "next" in grown.json()["meta"]["note"]
    )
    over = await owner.patch(url, json={"memoryMb": 2048})
    assert over.status_code == 403 and "Memory quota" in over.json()["error"]["detail"]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"variables": {"MAX_PLAYERS": "1000"}}, "variables.MAX_PLAYERS"),
        ({"variables": {"SECRET": "mine now"}}, "variables.SECRET"),
        ({"variables": {"MOTD": "{{SECRET}}"}}, "variables.MOTD"),
        ({"version": "0.1"}, "version"),
        ({"cpu": 999999}, "cpu"),
    ]
    for body, field in bad:
        refused = await owner.patch(url, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert field in {e["field"] for e in refused.json()["error"]["errors"]}
    older = await owner.patch(url, json={"version": "1.0"})
    assert older.status_code == 200 and older.json()["data"]["versionTag"] == "1.0"
    async with panel.database.sessionmaker() as db:
        row = await load_server(db, uuid.UUID(server["id"]))
        assert row is not None
        values = {v.key: v.value for v in row.variables}
    assert values == {"MOTD": "new", "MAX_PLAYERS": "10", "SECRET": "s3cret"}
    assert row.memory_mb == 512 and row.docker_image == "stellarstack-test/game:1.0"


async def test_a_subuser_needs_the_matching_permission_to_change_things(
    panel: ServersPanel,
) -> None:
    node = await panel.node([31031])
    owner, helper = await panel.user(), await panel.user()
    server = await _deploy(panel, owner, node)
    async with panel.database.sessionmaker() as db:
        db.add(
            Subuser(
                user_id=helper.user_id,
                server_id=uuid.UUID(server["id"]),
                permissions=["server.view", "server.startup.update"],
            )
        )
        await db.commit()
    url = f"/api/v1/servers/{server['id']}"
    assert (await helper.patch(url, json={"name": "Mine"})).status_code == 403
    assert (await helper.patch(url, json={"variables": {"WORLD_NAME": "mars"}})).status_code == 200
    assert (await helper.delete(url)).status_code == 403
    assert (await helper.post(url + "/suspend")).status_code == 403


async def test_deleting_through_the_node_frees_the_ports(panel: ServersPanel) -> None:
    node = await panel.node([31041])
    owner = await panel.user()
    server = await _deploy(panel, owner, node)
    async with daemon_answering(panel, node, Outcome.COMPLETED):
        gone = await owner.delete(f"/api/v1/servers/{server['id']}")
    assert gone.status_code == 200 and gone.json()["data"] == {"deleted": True, "warning": None}
    assert await panel.count(Server, id=uuid.UUID(server["id"])) == 0
    assert all(a.server_id is None and not a.is_primary for a in await panel.allocations(node))
    sent = [c.type for c in await panel.commands_of(node)]
    assert sent == ["server.create", "server.delete"]
    # the freed port takes the next server
    assert (await _deploy(panel, owner, node))["address"] == "10.0.0.1:31041"


async def test_a_delete_the_node_refuses_or_never_confirms_keeps_the_server(
    panel: ServersPanel,
) -> None:
    node = await panel.node([31051])
    owner = await panel.user()
    server = await _deploy(panel, owner, node)
    url = f"/api/v1/servers/{server['id']}"
    silent = await owner.delete(url)  # nobody answers within server_delete_wait (1 s here)
    assert silent.status_code == 503 and "did not confirm" in silent.json()["error"]["detail"]
    async with daemon_answering(panel, node, Outcome.FAILED, "disk is read-only"):
        failed = await owner.delete(url)
    assert failed.status_code == 409 and "disk is read-only" in failed.json()["error"]["detail"]
    assert await panel.count(Server, id=uuid.UUID(server["id"])) == 1


async def test_an_offline_node_blocks_delete_unless_an_admin_forces_it(
    panel: ServersPanel,
) -> None:
    node = await panel.node([31061])
    owner, admin = await panel.user(), await panel.user(Role.ADMIN)
    server = await _deploy(panel, owner, node)
    async with panel.database.sessionmaker() as db:
        row = await db.get(Server, uuid.UUID(server["id"]))
        assert row is not None
        await db.refresh(row, ["node"])
        row.node.status = NodeStatus.OFFLINE
        await db.commit()
    url = f"/api/v1/servers/{server['id']}"
    blocked = await owner.delete(url)
    assert blocked.status_code == 409 and "offline" in blocked.json()["error"]["detail"]
    assert (await owner.delete(url, params={"force": "true"})).status_code == 403
    forced = await admin.delete(url, params={"force": "true"})
    assert forced.status_code == 200 and "may remain" in forced.json()["data"]["warning"]
    assert await panel.count(Server, id=uuid.UUID(server["id"])) == 0
    assert all(a.server_id is None for a in await panel.allocations(node))


async def test_suspension_stops_the_server_and_blocks_power_until_lifted(
    panel: ServersPanel,
) -> None:
    node = await panel.node([31071])
    owner, admin = await panel.user(), await panel.user(Role.ADMIN)
    server = await _deploy(panel, owner, node)
    url = f"/api/v1/servers/{server['id']}"
    assert (await owner.post(url + "/suspend", json={"reason": "me"})).status_code == 403
    suspended = await admin.post(url + "/suspend", json={"reason": "unpaid invoice"})
    assert suspended.status_code == 200, suspended.text
    data = suspended.json()["data"]
    assert data["status"] == "suspended" and data["suspended"] is True
    assert data["suspendReason"] == "unpaid invoice"
    stop = (await panel.commands_of(node))[-1]
    assert stop.type == "server.stop" and stop.payload == {"serverId": server["id"]}
    async with panel.database.sessionmaker() as db:
        row = await load_server(db, uuid.UUID(server["id"]))
        assert row is not None
        with pytest.raises(Conflict, match="unpaid invoice"):
            ensure_not_suspended(row)
    seen = await owner.get(url)
    assert seen.json()["data"]["suspended"] is True
    lifted = await admin.post(url + "/unsuspend")
    assert lifted.status_code == 200 and lifted.json()["data"]["status"] == "offline"
    assert lifted.json()["data"]["suspended"] is False
    async with panel.database.sessionmaker() as db:
        row = await load_server(db, uuid.UUID(server["id"]))
        assert row is not None
        ensure_not_suspended(row)
    too_long = await admin.post(url + "/suspend", json={"reason": "x" * 1025})
    assert too_long.status_code == 422


async def test_script_in_a_name_is_stored_as_plain_text(panel: ServersPanel) -> None:
    node = await panel.node([31081])
    owner = await panel.user()
    name = '<script>alert("x")</script>'
    server = await _deploy(panel, owner, node, name=name, description="<img src=x onerror=1>")
    got = await owner.get(f"/api/v1/servers/{server['id']}")
    assert got.headers["content-type"].startswith("application/json")
    assert got.json()["data"]["name"] == name


async def test_a_removed_subuser_loses_the_server_at_once(panel: ServersPanel) -> None:
    node = await panel.node([31091])
    owner, helper = await panel.user(), await panel.user()
    server = await _deploy(panel, owner, node)
    server_id = uuid.UUID(server["id"])
    async with panel.database.sessionmaker() as db:
        db.add(Subuser(user_id=helper.user_id, server_id=server_id, permissions=["server.view"]))
        await db.commit()
    assert (await helper.get(f"/api/v1/servers/{server_id}")).status_code == 200
    async with panel.database.sessionmaker() as db:
        await db.execute(sa.delete(Subuser).where(Subuser.server_id == server_id))
        await db.commit()
    assert (await helper.get(f"/api/v1/servers/{server_id}")).status_code == 404
    assert (await helper.get("/api/v1/servers")).json()["data"] == []
