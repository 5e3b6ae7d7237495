"""The audit log API: filters, pagination, newest first, text returned as stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.domain.audit.service import Actor, record
from tests.panel.admin.world import World, world

__all__ = ["world"]

AUDIT = "/api/v1/admin/audit"


async def _seed(world: World) -> None:
    actor = Actor(ActorType.USER, str(world.users["admin"].id), world.users["admin"].id, "10.0.0.1")
    async with world.database.sessionmaker() as db:
        await record(
            db, actor, "test.alpha", "widget", "w1", details={"name": "<script>x</script>"}
        )
        await record(
            db, actor, "test.beta", "widget", "w2", status=AuditStatus.FAILURE, error="nope"
        )
        await record(db, Actor.system("scheduler"), "test.gamma", "gadget", "g1")
        await db.commit()


async def test_entries_filter_by_action_status_actor_and_resource(world: World) -> None:
    await _seed(world)
    headers = world.headers("support")

    async def actions(**params: str) -> list[str]:
        response = await world.client.get(AUDIT, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [e["action"] for e in response.json()["data"]]

    assert await actions(action="test.*") == ["test.gamma", "test.beta", "test.alpha"]
    assert await actions(action="test.*", status="failure") == ["test.beta"]
    assert await actions(action="test.*", actorType="system") == ["test.gamma"]
    assert await actions(resource="widget", resourceId="w1") == ["test.alpha"]
    assert await actions(action="test%") == []
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await actions(action="test.*", since=later) == []


async def test_entries_carry_actor_ip_error_and_details_verbatim(world: World) -> None:
    response = await world.client.get(
        AUDIT, params={"action": "test.*", "perPage": 1, "page": 3}, headers=world.headers("admin")
    )
    body = response.json()
    entry = body["data"][0]
    assert entry["action"] == "test.alpha"
    assert entry["actorIp"] == "10.0.0.1" and entry["userEmail"] == "admin@example.test"
    assert entry["details"] == {"name": "<script>x</script>"}
    assert body["meta"]["pagination"]["total"] >= 3


async def test_bad_filters_are_422(world: World) -> None:
    headers = world.headers("admin")
    for params in (
        {"status": "maybe"},
        {"since": "yesterday"},
        {"perPage": "1000"},
        {"page": "0"},
        {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
        {"action": "x" * 200},
    ):
        assert (await world.client.get(AUDIT, params=params, headers=headers)).status_code == 422, (
            params
        )
