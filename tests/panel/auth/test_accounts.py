"""Accounts over the API: sign-in, sign-up by policy, sessions' cookie, same answers for all."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select

from stellarstack.panel.db.enums import AuditStatus, Role
from stellarstack.panel.db.models import AuditLog, Session, User
from stellarstack.panel.errors import NotFound
from tests.panel.auth.conftest import PASSWORD, AccountPanel, Inbox, sign_in, token_in

GENERIC = "The email or password is incorrect."


async def test_sign_in_sets_an_http_only_samesite_cookie_and_records_it(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test", name="Ada")
    response = await api.post(
        "/api/v1/auth/sign-in", json={"email": " Ada@Example.TEST", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["data"]["user"]["email"] == "ada@example.test"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "stellar_session" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=604800" in cookie
    assert (await api.get("/api/v1/auth/session")).json()["data"]["user"]["name"] == "Ada"
    async with account_panel.database.sessionmaker() as db:
        entry = (
            await db.execute(select(AuditLog).where(AuditLog.action == "auth.sign_in"))
        ).scalar_one()
        assert entry.status == AuditStatus.SUCCESS
        user = (await db.execute(select(User))).scalar_one()
        assert user.last_login_at is not None


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("ada@example.test", "wrong password"),
        ("nobody@example.test", PASSWORD),
        ("ada@example.test", ""),
        ("", ""),
        ("ada@example.test", "x" * 2000),
        ("<script>@x.y", PASSWORD),
    ],
)
async def test_unknown_and_known_emails_get_the_same_answer(
    account_panel: AccountPanel, api: httpx.AsyncClient, email: str, password: str
) -> None:
    await account_panel.add_user("ada@example.test")
    response = await api.post("/api/v1/auth/sign-in", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json()["error"]["detail"] == GENERIC
    assert "stellar_session" not in response.headers.get("set-cookie", "")


async def test_failed_sign_ins_are_audited_although_the_request_fails(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    await api.post("/api/v1/auth/sign-in", json={"email": "ada@example.test", "password": "nope"})
    await api.post("/api/v1/auth/sign-in", json={"email": "who@example.test", "password": "nope"})
    async with account_panel.database.sessionmaker() as db:
        entries = (await db.execute(select(AuditLog).order_by(AuditLog.created_at))).scalars()
        failures = [(e.actor_id, e.status, (e.details or {}).get("email")) for e in entries]
    assert failures[0][1:] == (AuditStatus.FAILURE, "ada@example.test")
    assert failures[1] == ("anonymous", AuditStatus.FAILURE, "who@example.test")


def _median_seconds(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


async def test_unknown_and_known_emails_cost_the_same_work(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    # Not a benchmark: both paths must verify one Argon2 hash, so neither is many times faster.
    await account_panel.add_user("ada@example.test")
    known: list[float] = []
    unknown: list[float] = []
    for _ in range(3):
        for email, sink in (("ada@example.test", known), ("nobody@example.test", unknown)):
            start = time.perf_counter()
            await api.post("/api/v1/auth/sign-in", json={"email": email, "password": "wrong1234"})
            sink.append(time.perf_counter() - start)
    ratio = _median_seconds(known) / _median_seconds(unknown)
    assert 0.33 < ratio < 3, (known, unknown)


@pytest.mark.parametrize(
    "cookie",
    ["forged-token", "", "x" * 5000, "'; DROP TABLE sessions; --", "%00%0d%0aSet-Cookie: a=b"],
)
async def test_forged_or_tampered_session_cookies_are_anonymous(
    account_panel: AccountPanel, api: httpx.AsyncClient, cookie: str
) -> None:
    api.cookies.set("stellar_session", cookie)
    response = await api.get("/api/v1/auth/session")
    assert response.status_code == 401


async def test_a_session_cookie_with_one_character_changed_is_refused(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    await sign_in(api, "ada@example.test")
    token = api.cookies["stellar_session"]
    api.cookies.set("stellar_session", token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert (await api.get("/api/v1/auth/session")).status_code == 401


async def test_sign_out_ends_the_session_for_good(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("ada@example.test")
    await sign_in(api, "ada@example.test")
    token = api.cookies["stellar_session"]
    assert (await api.post("/api/v1/auth/sign-out")).status_code == 204
    api.cookies.set("stellar_session", token)
    assert (await api.get("/api/v1/auth/session")).status_code == 401


async def test_a_suspended_account_is_refused_after_the_password(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("gone@example.test")
    async with account_panel.database.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        user.suspended = True
        await db.commit()
    response = await api.post(
        "/api/v1/auth/sign-in", json={"email": "gone@example.test", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "suspended" in response.json()["error"]["detail"]


async def test_open_sign_up_sends_a_verification_link_before_sign_in_works(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    body = {"email": "new@example.test", "password": "a long passphrase", "name": "Newt"}
    response = await api.post("/api/v1/auth/sign-up", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["verificationRequired"] is True
    refused = await api.post(
        "/api/v1/auth/sign-in", json={"email": body["email"], "password": body["password"]}
    )
    assert refused.status_code == 403 and "Confirm your email" in refused.text
    message = await inbox.wait_for("new@example.test")
    assert message["Subject"] == "Confirm your email address"
    verified = await api.post("/api/v1/auth/verify-email", json={"token": token_in(message)})
    assert verified.status_code == 200
    assert verified.json()["data"]["user"]["emailVerified"] is True
    await sign_in(api, "new@example.test", "a long passphrase")


async def test_sign_up_with_a_taken_address_answers_like_a_new_one(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    taken = await api.post(
        "/api/v1/auth/sign-up", json={"email": "ada@example.test", "password": "another pass"}
    )
    fresh = await api.post(
        "/api/v1/auth/sign-up", json={"email": "eve@example.test", "password": "another pass"}
    )
    assert taken.status_code == fresh.status_code == 201
    assert taken.json()["data"] == fresh.json()["data"]
    await account_panel.drain_mail()
    assert inbox.to("ada@example.test") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "long enough"}, "email"),
        ({"email": "a@b.c", "password": "short"}, "password"),
        ({"email": "a@b.c", "password": "x" * 1025}, "password"),
        ({"email": "a@b.c", "password": "A@B.C"}, "password"),
        ({"email": "a@b.c", "password": "long enough", "name": "n" * 256}, "name"),
        ({"email": "a@b.c", "password": "long enough", "name": "bad\x00name"}, "name"),
    ],
)
async def test_sign_up_explains_what_to_fix(
    account_panel: AccountPanel, api: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await api.post("/api/v1/auth/sign-up", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["error"]["errors"]] == [field]


async def test_names_with_html_are_stored_as_text(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    name = "<script>alert('x')</script>"
    await account_panel.add_user("ada@example.test", name=name)
    await sign_in(api, "ada@example.test")
    assert (await api.get("/api/v1/users/me")).json()["data"]["name"] == name


async def _set_policy(panel: AccountPanel, policy: str) -> None:
    panel.app.state.settings.signup_policy = policy


async def test_closed_sign_up_is_refused_with_a_way_forward(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await _set_policy(account_panel, "closed")
    response = await api.post(
        "/api/v1/auth/sign-up", json={"email": "a@b.example", "password": "long enough"}
    )
    assert response.status_code == 403
    assert "Ask the administrator" in response.json()["error"]["detail"]


async def test_invite_only_sign_up_needs_an_invitation_for_that_address(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    from stellarstack.panel.auth.signup import issue_invite

    await _set_policy(account_panel, "invite")
    async with account_panel.database.sessionmaker() as db:
        invite = await issue_invite(db, "guest@example.test")
        await db.commit()
    body = {"email": "guest@example.test", "password": "long enough"}
    assert (await api.post("/api/v1/auth/sign-up", json=body)).status_code == 403
    wrong = await api.post(
        "/api/v1/auth/sign-up", json={**body, "email": "other@example.test", "invite": invite}
    )
    assert wrong.status_code == 400
    accepted = await api.post("/api/v1/auth/sign-up", json={**body, "invite": invite})
    assert accepted.status_code == 201
    assert accepted.json()["data"]["user"]["emailVerified"] is True
    assert (await api.get("/api/v1/auth/session")).status_code == 200
    again = await api.post(
        "/api/v1/auth/sign-up", json={**body, "email": "x@example.test", "invite": invite}
    )
    assert again.status_code == 400  # used once


async def test_an_invitation_is_not_a_reset_token(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    from stellarstack.panel.auth.signup import issue_invite

    await account_panel.add_user("guest@example.test")
    async with account_panel.database.sessionmaker() as db:
        invite = await issue_invite(db, "guest@example.test")
        await db.commit()
    response = await api.post(
        "/api/v1/auth/reset-password", json={"token": invite, "password": "hijacked pass"}
    )
    assert response.status_code == 400
    await sign_in(api, "guest@example.test")


async def test_two_factor_accounts_get_a_challenge_instead_of_a_session(
    account_panel: AccountPanel, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stellarstack.panel.auth import totp

    async def challenge(db: object, user: User) -> str:
        return f"challenge-for-{user.email}"

    # The 2FA engineer owns start_challenge; only the seam's contract is pinned here.
    monkeypatch.setattr(totp, "start_challenge", challenge)
    await account_panel.add_user("ada@example.test")
    async with account_panel.database.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        user.totp_enabled = True
        await db.commit()
    response = await api.post(
        "/api/v1/auth/sign-in", json={"email": "ada@example.test", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["data"] == {
        "twoFactorRequired": True,
        "challengeToken": "challenge-for-ada@example.test",
    }
    assert "stellar_session" not in response.headers.get("set-cookie", "")
    async with account_panel.database.sessionmaker() as db:
        assert (await db.execute(select(Session))).first() is None


async def test_admins_are_marked_verified_when_made_by_the_operator(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user("root@example.test", role=Role.ADMIN)
    await sign_in(api, "root@example.test")
    me = (await api.get("/api/v1/users/me")).json()["data"]
    assert me["role"] == "admin" and me["emailVerified"] is True
    assert NotFound.status == 404


async def test_a_server_invitation_becomes_access_once_the_address_is_verified(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    from datetime import UTC, datetime, timedelta

    from stellarstack.panel.auth.sessions import hash_token
    from stellarstack.panel.db.enums import TokenPurpose
    from stellarstack.panel.db.models import OneTimeToken, Subuser
    from tests.panel.db.factories import make_blueprint, make_node, make_server, make_user

    async with account_panel.database.sessionmaker() as db:
        owner = make_user("owner@example.test")
        server = make_server(owner, make_node(), make_blueprint())
        db.add_all([owner, server])
        await db.flush()
        db.add(  # what inviting an unknown address to a server leaves behind
            OneTimeToken(
                user_id=None,
                purpose=TokenPurpose.INVITE,
                token_hash=hash_token("invitation-link-token"),
                email="friend@example.test",
                data={"serverId": str(server.id), "permissions": ["server.console"]},
                expires_at=datetime.now(UTC) + timedelta(days=7),
            )
        )
        await db.commit()
        server_id = server.id
    body = {"email": "friend@example.test", "password": "a long passphrase"}
    assert (await api.post("/api/v1/auth/sign-up", json=body)).status_code == 201
    async with account_panel.database.sessionmaker() as db:
        granted = (await db.execute(select(Subuser).where(Subuser.server_id == server_id))).all()
    assert granted == [], "an unverified address must not claim an invitation"
    message = await inbox.wait_for("friend@example.test")
    verified = await api.post("/api/v1/auth/verify-email", json={"token": token_in(message)})
    assert verified.status_code == 200
    async with account_panel.database.sessionmaker() as db:
        subuser = (
            await db.execute(select(Subuser).where(Subuser.server_id == server_id))
        ).scalar_one()
    assert subuser.permissions == ["server.console"]
