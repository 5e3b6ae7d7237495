"""API keys over HTTP: shown once, stored hashed, scoped, expiring, revocable, throttled writes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from stellarstack.panel.db.enums import ApiKeyKind
from stellarstack.panel.db.models import ApiKey
from tests.panel.admin.world import World, add_user, key_for, session_for, world

__all__ = ["world"]

KEYS = "/api/v1/users/me/api-keys"


async def _create(world: World, actor: str, **body: object) -> dict[str, object]:
    response = await world.client.post(KEYS, headers=world.headers(actor), json=body)
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def test_created_key_is_shown_once_and_stored_only_as_a_hash(world: World) -> None:
    created = await _create(world, "owner", name="ci", permissions=["server.view"])
    token = str(created["token"])
    assert token.startswith("strk_") and len(token) > 40
    assert token.startswith(str(created["prefix"]))
    listed = (await world.client.get(KEYS, headers=world.headers("owner"))).json()["data"]
    assert next(k for k in listed if k["id"] == created["id"]).get("token") is None
    async with world.database.sessionmaker() as db:
        key = (
            await db.execute(select(ApiKey).where(ApiKey.prefix == created["prefix"]))
        ).scalar_one()
    assert key.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(vars(key))


async def test_bearer_key_acts_as_its_user(world: World) -> None:
    created = await _create(world, "owner", name="script", permissions=["server.view"])
    me = await world.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert me.status_code == 200
    assert me.json()["data"]["email"] == "owner@example.test"


async def test_a_key_can_never_hold_more_than_its_user(world: World) -> None:
    headers = world.headers("owner")
    app_key = await world.client.post(
        KEYS,
        headers=headers,
        json={"name": "x", "kind": "application", "permissions": ["user.view"]},
    )
    assert app_key.status_code == 403
    admin_perm = await world.client.post(
        KEYS, headers=headers, json={"name": "x", "permissions": ["user.view"]}
    )
    assert admin_perm.status_code == 422
    assert "application key" in admin_perm.json()["error"]["errors"][0]["message"]
    unknown = await world.client.post(
        KEYS, headers=headers, json={"name": "x", "permissions": ["server.root"]}
    )
    assert unknown.status_code == 422
    beyond_role = await world.client.post(
        KEYS,
        headers=world.headers("admin"),
        json={"name": "x", "kind": "application", "permissions": ["platform.settings"]},
    )
    assert beyond_role.status_code == 422
    assert "more than you" in beyond_role.text


async def test_application_key_works_on_admin_routes_only(world: World) -> None:
    created = await _create(
        world, "admin", name="billing", kind="application", permissions=["user.view"]
    )
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert (await world.client.get("/api/v1/admin/users", headers=bearer)).status_code == 200
    assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 403
    # within its role, but not within the key's own list
    assert (await world.client.get("/api/v1/admin/stats", headers=bearer)).status_code == 403


async def test_revoked_key_stops_working_on_the_next_request(world: World) -> None:
    created = await _create(world, "owner", name="temp", permissions=["server.view"])
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 200
    gone = await world.client.delete(f"{KEYS}/{created['id']}", headers=world.headers("owner"))
    assert gone.status_code == 204
    after = await world.client.get("/api/v1/users/me", headers=bearer)
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]["detail"]
    again = await world.client.delete(f"{KEYS}/{created['id']}", headers=world.headers("owner"))
    assert again.status_code == 404


async def test_someone_elses_key_cannot_be_revoked(world: World) -> None:
    created = await _create(world, "owner", name="mine", permissions=["server.view"])
    other = await world.client.delete(
        f"{KEYS}/{created['id']}", headers=world.headers("other_user")
    )
    assert other.status_code == 404


async def test_expired_key_is_refused_and_expiry_must_be_future(world: World) -> None:
    user = await add_user(world.database, "expiring@example.test")
    past = datetime.now(UTC) - timedelta(seconds=1)
    bearer = await key_for(world.database, user, ["server.view"], expires_at=past)
    response = await world.client.get("/api/v1/users/me", headers=bearer)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["detail"]
    refused = await world.client.post(
        KEYS,
        headers=world.headers("owner"),
        json={"name": "x", "permissions": ["server.view"], "expiresAt": past.isoformat()},
    )
    assert refused.status_code == 422


async def test_last_used_is_written_at_most_once_a_minute(world: World) -> None:
    user = await add_user(world.database, "busy@example.test")
    key_id = await key_for(world.database, user, ["server.view"], return_id=True)
    async with world.database.sessionmaker() as db:
        key = await db.get(ApiKey, key_id)
        assert key is not None
        token_prefix = key.prefix
    # the helper does not hand back the token with the id, so make a second key to use
    bearer = await key_for(world.database, user, ["server.view"])
    for _ in range(3):
        assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 200
    async with world.database.sessionmaker() as db:
        used = (
            await db.execute(
                select(ApiKey).where(ApiKey.user_id == user.id, ApiKey.prefix != token_prefix)
            )
        ).scalar_one()
        first = used.last_used_at
        assert first is not None
        used.last_used_at = first - timedelta(minutes=2)
        await db.commit()
    assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 200
    async with world.database.sessionmaker() as db:
        refreshed = await db.get(ApiKey, used.id)
        assert refreshed is not None and refreshed.last_used_at is not None
        assert refreshed.last_used_at > first - timedelta(minutes=2)
        assert refreshed.last_used_ip == "127.0.0.1"


async def test_a_bad_authorization_header_is_401_even_with_a_valid_cookie(world: World) -> None:
    for header in ("Basic b3duZXI6cGFzcw==", "Bearer", "Bearer strk_forged", "Bearer " + "a" * 500):
        headers = {**world.headers("owner"), "Authorization": header}
        response = await world.client.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 401, header


async def test_api_keys_cannot_manage_api_keys(world: World) -> None:
    listed = await world.client.get(KEYS, headers=world.headers("key_with"))
    assert listed.status_code == 403
    assert "session" in listed.json()["error"]["detail"]


async def test_key_restricted_to_addresses_refuses_others(world: World) -> None:
    created = await _create(
        world, "owner", name="office", permissions=["server.view"], allowedIps=["10.0.0.0/8"]
    )
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert (await world.client.get("/api/v1/users/me", headers=bearer)).status_code == 403
    bad = await world.client.post(
        KEYS,
        headers=world.headers("owner"),
        json={"name": "x", "permissions": ["server.view"], "allowedIps": ["not-an-ip"]},
    )
    assert bad.status_code == 422


async def test_hostile_key_names_are_kept_verbatim_and_blank_names_refused(world: World) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    created = await _create(world, "owner", name=hostile, permissions=["server.view"])
    assert created["name"] == hostile
    blank = await world.client.post(
        KEYS, headers=world.headers("owner"), json={"name": "   ", "permissions": ["server.view"]}
    )
    assert blank.status_code == 422


async def test_a_user_has_at_most_25_live_keys(world: World) -> None:
    user = await add_user(world.database, "hoarder@example.test")
    headers = await session_for(world.database, user)
    for _ in range(24):
        await key_for(world.database, user, ["server.view"], kind=ApiKeyKind.CLIENT)
    body = {"name": "one more", "permissions": ["server.view"]}
    assert (await world.client.post(KEYS, headers=headers, json=body)).status_code == 201
    assert (await world.client.post(KEYS, headers=headers, json=body)).status_code == 409
