"""Subusers: grant by email, invitations, only permissions one holds, revocation at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from stellarstack.panel.db.models import AuditLog, OneTimeToken, Subuser
from stellarstack.panel.domain.subusers.service import claim_invitations
from tests.panel.admin.world import World, add_user, session_for, world
from tests.panel.db.factories import make_blueprint, make_node, make_server

__all__ = ["world"]


def _url(world: World, suffix: str = "") -> str:
    return f"/api/v1/servers/{world.server_id}/subusers{suffix}"


async def test_owner_grants_an_existing_user_who_then_has_exactly_that(world: World) -> None:
    friend = await add_user(world.database, "friend@example.test")
    friend_headers = await session_for(world.database, friend)
    assert (await world.client.get(_url(world), headers=friend_headers)).status_code == 404
    granted = await world.client.post(
        _url(world),
        json={"email": "Friend@Example.test", "permissions": ["server.subusers.read"]},
        headers=world.headers("owner"),
    )
    assert granted.status_code == 201, granted.text
    entry = granted.json()["data"]
    assert entry["userId"] == str(friend.id) and not entry["pending"]
    assert (await world.client.get(_url(world), headers=friend_headers)).status_code == 200
    patch = await world.client.patch(
        _url(world, f"/{entry['id']}"), json={"permissions": []}, headers=friend_headers
    )
    assert patch.status_code == 403
    revoked = await world.client.delete(
        _url(world, f"/{entry['id']}"), headers=world.headers("owner")
    )
    assert revoked.status_code == 204
    assert (await world.client.get(_url(world), headers=friend_headers)).status_code == 404
    async with world.database.sessionmaker() as db:
        actions = (
            (
                await db.execute(
                    select(AuditLog.action).where(AuditLog.resource_id == str(world.server_id))
                )
            )
            .scalars()
            .all()
        )
    assert {"subuser.grant", "subuser.revoke"} <= set(actions)


async def test_unknown_address_gets_an_invitation_claimed_at_sign_up(world: World) -> None:
    invited = await world.client.post(
        _url(world),
        json={"email": "newcomer@example.test", "permissions": ["server.view", "server.console"]},
        headers=world.headers("owner"),
    )
    assert invited.status_code == 201
    assert invited.json()["data"]["pending"] is True
    twice = await world.client.post(
        _url(world),
        json={"email": "newcomer@example.test", "permissions": ["server.view"]},
        headers=world.headers("owner"),
    )
    assert twice.status_code == 409
    newcomer = await add_user(world.database, "newcomer@example.test")
    async with world.database.sessionmaker() as db:
        # sign-up with the emailed link consumes the token before the invitation is claimed
        invitation = (
            await db.execute(
                select(OneTimeToken).where(OneTimeToken.email == "newcomer@example.test")
            )
        ).scalar_one()
        invitation.used_at = datetime.now(UTC)
        await db.commit()
    async with world.database.sessionmaker() as db:
        assert await claim_invitations(db, newcomer) == 1
        assert await claim_invitations(db, newcomer) == 0
        await db.commit()
        subuser = (
            await db.execute(select(Subuser).where(Subuser.user_id == newcomer.id))
        ).scalar_one()
    assert sorted(subuser.permissions) == ["server.console", "server.view"]


async def test_a_subuser_grants_only_what_it_holds(world: World) -> None:
    manager = await add_user(world.database, "manager@example.test")
    async with world.database.sessionmaker() as db:
        db.add(
            Subuser(
                user_id=manager.id,
                server_id=world.server_id,
                permissions=["server.view", "server.subusers.create", "server.subusers.update"],
            )
        )
        await db.commit()
    headers = await session_for(world.database, manager)
    beyond = await world.client.post(
        _url(world),
        json={"email": "helper@example.test", "permissions": ["server.files.write"]},
        headers=headers,
    )
    assert beyond.status_code == 403
    assert "server.files.write" in beyond.json()["error"]["detail"]
    within = await world.client.post(
        _url(world),
        json={"email": "helper@example.test", "permissions": ["server.view"]},
        headers=headers,
    )
    assert within.status_code == 201
    # cannot strip rights it never had from someone the owner trusted more
    full = next(
        s
        for s in (await world.client.get(_url(world), headers=world.headers("owner"))).json()[
            "data"
        ]
        if s["email"] == "subuser_with@example.test"
    )
    strip = await world.client.patch(
        _url(world, f"/{full['id']}"), json={"permissions": ["server.view"]}, headers=headers
    )
    assert strip.status_code == 403


async def test_bad_input_is_refused(world: World) -> None:
    owner = world.headers("owner")
    cases = [
        ({"email": "x@example.test", "permissions": ["server.root"]}, 422),
        ({"email": "not an email", "permissions": []}, 422),
        ({"email": "owner@example.test", "permissions": []}, 409),
        ({"email": "subuser_with@example.test", "permissions": []}, 409),
        ({"email": "<script>@example.test", "permissions": []}, 201),
    ]
    for body, status in cases:
        response = await world.client.post(_url(world), json=body, headers=owner)
        assert response.status_code == status, (body, response.text)


async def test_another_owners_server_and_subuser_ids_are_invisible(world: World) -> None:
    async with world.database.sessionmaker() as db:
        node, blueprint = make_node("other-node"), make_blueprint("other-bp")
        theirs = make_server(world.users["other_user"], node, blueprint, name="Theirs")
        db.add_all([node, blueprint, theirs])
        await db.commit()
    owner = world.headers("owner")
    foreign = await world.client.get(f"/api/v1/servers/{theirs.id}/subusers", headers=owner)
    assert foreign.status_code == 404
    by_identifier = await world.client.get(
        f"/api/v1/servers/{theirs.identifier}/subusers", headers=world.headers("other_user")
    )
    assert by_identifier.status_code == 200
    assert (
        await world.client.get(_url(world, f"/{uuid.uuid4()}"), headers=owner)
    ).status_code == 404
    for bad in ("..%2F..%2Fadmin", "%2e%2e", "x" * 65):
        response = await world.client.get(f"/api/v1/servers/{bad}/subusers", headers=owner)
        assert response.status_code in (404, 422), bad
