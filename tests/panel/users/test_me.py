"""`/api/v1/users/me`: profile, password change, sessions (list, revoke one, revoke others)."""

from __future__ import annotations

import httpx

from tests.panel.auth.conftest import PASSWORD, AccountPanel, sign_in


async def test_a_name_change_is_saved_and_trimmed(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    await sign_in(api, "ada@example.test")
    response = await api.patch("/api/v1/users/me", json={"name": "  Ada L.  "})
    assert response.status_code == 200 and response.json()["data"]["name"] == "Ada L."


async def test_changing_the_password_signs_out_every_other_session(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(ip="198.51.100.2") as phone:
        await sign_in(phone, "ada@example.test")
        await sign_in(api, "ada@example.test")
        bad = await api.post(
            "/api/v1/users/me/password",
            json={"currentPassword": "wrong", "newPassword": "a new passphrase"},
        )
        assert bad.status_code == 422
        assert (await phone.get("/api/v1/auth/session")).status_code == 200
        same_as_email = await api.post(
            "/api/v1/users/me/password",
            json={"currentPassword": PASSWORD, "newPassword": "ADA@example.test"},
        )
        assert same_as_email.status_code == 422
        good = await api.post(
            "/api/v1/users/me/password",
            json={"currentPassword": PASSWORD, "newPassword": "a new passphrase"},
        )
        assert good.status_code == 204
        assert (await phone.get("/api/v1/auth/session")).status_code == 401
        assert (await api.get("/api/v1/auth/session")).status_code == 200


async def test_a_user_lists_and_revokes_their_sessions(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(ip="198.51.100.3") as phone:
        await sign_in(phone, "ada@example.test")
        await sign_in(api, "ada@example.test")
        sessions = (await api.get("/api/v1/users/me/sessions")).json()["data"]
        assert len(sessions) == 2
        assert sorted(s["current"] for s in sessions) == [False, True]
        assert {s["ipAddress"] for s in sessions} == {"127.0.0.1", "198.51.100.3"}
        assert all("tokenHash" not in s and "token" not in s for s in sessions)
        other = next(s for s in sessions if not s["current"])
        assert (await api.delete(f"/api/v1/users/me/sessions/{other['id']}")).status_code == 204
        assert (await phone.get("/api/v1/auth/session")).status_code == 401


async def test_another_users_session_cannot_be_revoked(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    await account_panel.add_user("bob@example.test")
    async with account_panel.client(ip="198.51.100.4") as bob:
        await sign_in(bob, "bob@example.test")
        bob_session = (await bob.get("/api/v1/users/me/sessions")).json()["data"][0]["id"]
        await sign_in(api, "ada@example.test")
        response = await api.delete(f"/api/v1/users/me/sessions/{bob_session}")
        assert response.status_code == 404
        assert (await bob.get("/api/v1/auth/session")).status_code == 200
        garbage = await api.delete("/api/v1/users/me/sessions/..%2F..%2Fadmin")
        assert garbage.status_code in (404, 422)


async def test_revoking_all_others_keeps_this_session(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(ip="198.51.100.5") as phone:
        await sign_in(phone, "ada@example.test")
        await sign_in(api, "ada@example.test")
        assert (await api.delete("/api/v1/users/me/sessions")).status_code == 204
        assert (await phone.get("/api/v1/auth/session")).status_code == 401
        assert len((await api.get("/api/v1/users/me/sessions")).json()["data"]) == 1


async def test_the_profile_needs_a_sign_in(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/users/me")).status_code == 401
    assert (await api.patch("/api/v1/users/me", json={"name": "x"})).status_code == 401
