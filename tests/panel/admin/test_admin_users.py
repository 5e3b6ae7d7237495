"""Admin user management: search, create, role rules, suspension that ends everything at once."""

from __future__ import annotations

from sqlalchemy import select

from stellarstack.panel.db.enums import AuditStatus, Role
from stellarstack.panel.db.models import ApiKey, AuditLog, Session, User
from tests.panel.admin.world import World, add_user, key_for, session_for

USERS = "/api/v1/admin/users"


async def test_list_searches_email_and_name_and_paginates(world: World) -> None:
    for n in range(3):
        await add_user(world.database, f"findme-{n}@example.test")
    page = await world.client.get(
        USERS,
        params={"search": "FINDME", "perPage": 2, "page": 2},
        headers=world.headers("support"),
    )
    assert page.status_code == 200
    body = page.json()
    assert [u["email"] for u in body["data"]] == ["findme-2@example.test"]
    assert body["meta"]["pagination"] == {"page": 2, "perPage": 2, "total": 3, "totalPages": 2}
    # LIKE wildcards are matched literally
    wild = await world.client.get(USERS, params={"search": "%"}, headers=world.headers("support"))
    assert wild.json()["data"] == []
    by_role = await world.client.get(
        USERS, params={"role": "super_admin"}, headers=world.headers("admin")
    )
    assert [u["email"] for u in by_role.json()["data"]] == ["super_admin@example.test"]


async def test_only_a_super_admin_grants_admin_roles(world: World) -> None:
    target = await add_user(world.database, "climber@example.test")
    refused = await world.client.patch(
        f"{USERS}/{target.id}", json={"role": "admin"}, headers=world.headers("admin")
    )
    assert refused.status_code == 403
    granted = await world.client.patch(
        f"{USERS}/{target.id}", json={"role": "admin"}, headers=world.headers("super_admin")
    )
    assert granted.status_code == 200 and granted.json()["data"]["role"] == "admin"
    async with world.database.sessionmaker() as db:
        entries = (
            (
                await db.execute(
                    select(AuditLog).where(
                        AuditLog.resource_id == str(target.id), AuditLog.action.like("user.%")
                    )
                )
            )
            .scalars()
            .all()
        )
    outcomes = {(e.action, e.status) for e in entries}
    assert ("user.update", AuditStatus.FAILURE) in outcomes
    assert ("user.role_change", AuditStatus.SUCCESS) in outcomes


async def test_admins_manage_only_accounts_below_them(world: World) -> None:
    peer = await add_user(world.database, "peer@example.test", Role.ADMIN)
    rename = await world.client.patch(
        f"{USERS}/{peer.id}", json={"name": "x"}, headers=world.headers("admin")
    )
    assert rename.status_code == 403
    suspend = await world.client.post(
        f"{USERS}/{peer.id}/suspend", json={"reason": "x"}, headers=world.headers("moderator")
    )
    assert suspend.status_code == 403


async def test_the_last_super_admin_cannot_be_demoted_or_suspended(world: World) -> None:
    boss = world.users["super_admin"]
    demote = await world.client.patch(
        f"{USERS}/{boss.id}", json={"role": "user"}, headers=world.headers("super_admin")
    )
    assert demote.status_code == 409
    assert "last active super admin" in demote.json()["error"]["detail"]
    self_suspend = await world.client.post(
        f"{USERS}/{boss.id}/suspend", json={"reason": "x"}, headers=world.headers("super_admin")
    )
    assert self_suspend.status_code == 409


async def test_suspension_ends_sessions_and_revokes_keys_at_once(world: World) -> None:
    target = await add_user(world.database, "rulebreaker@example.test")
    cookie = await session_for(world.database, target)
    bearer = await key_for(world.database, target, ["server.view"])
    for headers in (cookie, bearer):
        assert (await world.client.get("/api/v1/users/me", headers=headers)).status_code == 200
    response = await world.client.post(
        f"{USERS}/{target.id}/suspend",
        json={"reason": "<b>cheating</b>"},
        headers=world.headers("moderator"),
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["suspended"] and data["suspendReason"] == "<b>cheating</b>"
    assert data["sessionCount"] == 0 and data["apiKeyCount"] == 0
    for headers in (cookie, bearer):
        assert (await world.client.get("/api/v1/users/me", headers=headers)).status_code == 401
    async with world.database.sessionmaker() as db:
        sessions = await db.execute(select(Session).where(Session.user_id == target.id))
        assert sessions.first() is None
        keys = (await db.execute(select(ApiKey).where(ApiKey.user_id == target.id))).scalars()
        assert all(k.revoked_at is not None for k in keys)
        entry = (
            await db.execute(
                select(AuditLog).where(
                    AuditLog.action == "user.suspend", AuditLog.resource_id == str(target.id)
                )
            )
        ).scalar_one()
        assert entry.details == {"reason": "<b>cheating</b>", "sessions": 1, "apiKeys": 1}
    again = await world.client.post(
        f"{USERS}/{target.id}/suspend", json={"reason": "x"}, headers=world.headers("moderator")
    )
    assert again.status_code == 409
    lifted = await world.client.post(
        f"{USERS}/{target.id}/unsuspend", headers=world.headers("moderator")
    )
    assert lifted.status_code == 200 and not lifted.json()["data"]["suspended"]
    # the old key stays revoked after the suspension is lifted
    assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 401


async def test_create_user_refuses_duplicates_and_bad_addresses(world: World) -> None:
    headers = world.headers("admin")
    body = {
        "email": "Fresh@Example.test",
        "password": "long enough password",
        "name": "<i>Fresh</i>",
    }
    created = await world.client.post(USERS, json=body, headers=headers)
    assert created.status_code == 201
    assert created.json()["data"]["email"] == "fresh@example.test"
    assert created.json()["data"]["name"] == "<i>Fresh</i>"
    assert (await world.client.post(USERS, json=body, headers=headers)).status_code == 409
    bad = await world.client.post(USERS, json={**body, "email": "no at sign"}, headers=headers)
    assert bad.status_code == 422
    admin_role = await world.client.post(
        USERS, json={**body, "email": "a2@example.test", "role": "super_admin"}, headers=headers
    )
    assert admin_role.status_code == 403
    async with world.database.sessionmaker() as db:
        assert (
            await db.execute(select(User).where(User.email == "a2@example.test"))
        ).first() is None


async def test_unknown_user_is_404_and_malformed_id_422(world: World) -> None:
    headers = world.headers("admin")
    missing = await world.client.get(
        f"{USERS}/00000000-0000-0000-0000-000000000000", headers=headers
    )
    assert missing.status_code == 404
    assert (await world.client.get(f"{USERS}/../../etc", headers=headers)).status_code in (404, 422)
    assert (await world.client.get(f"{USERS}/not-a-uuid", headers=headers)).status_code == 422


async def test_stats_count_users_by_role(world: World) -> None:
    stats = await world.client.get("/api/v1/admin/stats", headers=world.headers("support"))
    assert stats.status_code == 200
    data = stats.json()["data"]
    assert data["usersByRole"]["super_admin"] >= 1
    assert data["users"] == sum(data["usersByRole"].values())
    assert data["servers"] == 1 and data["suspendedUsers"] >= 1
