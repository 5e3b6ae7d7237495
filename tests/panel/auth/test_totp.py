"""Two-factor over the API on SQLite and PostgreSQL: enrollment, single-use codes, the challenge."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy import select, update

from stellarstack.panel.auth import totp
from stellarstack.panel.db.enums import AuditStatus, TokenPurpose
from stellarstack.panel.db.models import AuditLog, OneTimeToken, RecoveryCode, User
from tests.panel.auth.conftest import PASSWORD, AccountPanel, sign_in

EMAIL = "ada@example.test"


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The TOTP code of the current step plus `offset_steps`."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


async def enrolled(panel: AccountPanel, api: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Sign in, enroll and enable two-factor with the current code: (secret, recovery codes)."""
    await panel.add_user(EMAIL)
    await sign_in(api, EMAIL)
    setup = await api.post("/api/v1/auth/2fa/setup")
    assert setup.status_code == 200, setup.text
    secret = setup.json()["data"]["secret"]
    enable = await api.post("/api/v1/auth/2fa/enable", json={"code": code_at(secret)})
    assert enable.status_code == 200, enable.text
    return secret, enable.json()["data"]["recoveryCodes"]


async def challenge_token(panel: AccountPanel) -> str:
    """A fresh sign-in challenge for the test user (what sign-in hands out after the password)."""
    async with panel.database.sessionmaker() as db:
        user = (await db.execute(select(User).where(User.email == EMAIL))).scalar_one()
        token = await totp.start_challenge(db, user)
        await db.commit()
    return token


async def forget_last_step(panel: AccountPanel) -> None:
    """Let the next test step use the current code again (as if 90 s had passed)."""
    async with panel.database.sessionmaker() as db:
        await db.execute(update(User).values(totp_last_used_step=None))
        await db.commit()


async def test_setup_gives_a_secret_uri_and_svg_qr_and_stores_it_encrypted(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user(EMAIL)
    await sign_in(api, EMAIL)
    data = (await api.post("/api/v1/auth/2fa/setup")).json()["data"]
    assert len(data["secret"]) == 32
    assert data["otpauthUri"].startswith("otpauth://totp/StellarStack:ada%40example.test?")
    assert f"secret={data['secret']}" in data["otpauthUri"]
    assert data["qrCode"].startswith("data:image/svg+xml")
    async with account_panel.database.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        assert user.totp_secret and data["secret"] not in user.totp_secret
        assert user.totp_enabled is False
    status = (await api.get("/api/v1/auth/2fa")).json()["data"]
    assert status == {"enabled": False, "pending": True, "recoveryCodesRemaining": 0}


async def test_a_wrong_confirmation_code_leaves_two_factor_off(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await account_panel.add_user(EMAIL)
    await sign_in(api, EMAIL)
    secret = (await api.post("/api/v1/auth/2fa/setup")).json()["data"]["secret"]
    wrong = "000000" if code_at(secret) != "000000" else "111111"
    response = await api.post("/api/v1/auth/2fa/enable", json={"code": wrong})
    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["field"] == "code"
    assert (await api.get("/api/v1/auth/2fa")).json()["data"]["enabled"] is False


async def test_enabling_returns_ten_distinct_recovery_codes_stored_hashed(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    _, codes = await enrolled(account_panel, api)
    assert len(set(codes)) == 10
    async with account_panel.database.sessionmaker() as db:
        stored = [r.code_hash for r in (await db.execute(select(RecoveryCode))).scalars()]
        actions = [a.action for a in (await db.execute(select(AuditLog))).scalars()]
    assert len(stored) == 10 and not set(codes) & set(stored)
    assert "auth.2fa.enable" in actions
    assert (await api.post("/api/v1/auth/2fa/setup")).status_code == 409


async def test_the_challenge_exchanges_a_code_for_a_session(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, _ = await enrolled(account_panel, api)
    token = await challenge_token(account_panel)
    async with account_panel.client() as browser:
        response = await browser.post(
            "/api/v1/auth/2fa/challenge", json={"token": token, "code": code_at(secret, 1)}
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["method"] == "totp"
        assert "httponly" in response.headers["set-cookie"].lower()
        me = await browser.get("/api/v1/auth/session")
        assert me.json()["data"]["user"]["email"] == EMAIL


async def test_a_reused_totp_code_is_refused_also_an_earlier_one_in_the_window(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, _ = await enrolled(account_panel, api)  # used the current step's code
    for code in (code_at(secret), code_at(secret, -1)):
        response = await api.post(
            "/api/v1/auth/2fa/challenge",
            json={"token": await challenge_token(account_panel), "code": code},
        )
        assert response.status_code == 401, code
        assert "not valid" in response.json()["error"]["detail"]


async def test_the_same_code_racing_twice_is_accepted_once(account_panel: AccountPanel) -> None:
    await account_panel.add_user(EMAIL)
    cipher = totp.SecretCipher("test-key")
    secret = pyotp.random_base32()
    async with account_panel.database.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        user.totp_secret, user.totp_enabled = cipher.encrypt(secret), True
        await db.commit()

    async def attempt() -> bool:
        async with account_panel.database.sessionmaker() as db:
            user = (await db.execute(select(User))).scalar_one()
            accepted = await totp.accept_totp(db, user, secret, code_at(secret))
            await db.commit()
            return accepted

    results = await asyncio.gather(*(attempt() for _ in range(4)), return_exceptions=True)
    assert [r for r in results if r is True] == [True], results


async def test_a_recovery_code_works_once(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    _, codes = await enrolled(account_panel, api)
    spelled = codes[3].upper().replace("-", " ")  # typed from paper
    first = await api.post(
        "/api/v1/auth/2fa/challenge",
        json={"token": await challenge_token(account_panel), "code": spelled},
    )
    assert first.status_code == 200 and first.json()["data"]["method"] == "recovery"
    again = await api.post(
        "/api/v1/auth/2fa/challenge",
        json={"token": await challenge_token(account_panel), "code": codes[3]},
    )
    assert again.status_code == 401
    assert (await api.get("/api/v1/auth/2fa")).json()["data"]["recoveryCodesRemaining"] == 9


async def test_a_challenge_token_is_single_use(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    _, codes = await enrolled(account_panel, api)
    token = await challenge_token(account_panel)
    ok = await api.post("/api/v1/auth/2fa/challenge", json={"token": token, "code": codes[0]})
    assert ok.status_code == 200
    replay = await api.post("/api/v1/auth/2fa/challenge", json={"token": token, "code": codes[1]})
    assert replay.status_code == 401
    assert "expired or was already used" in replay.json()["error"]["detail"]


async def test_five_wrong_codes_end_the_challenge_and_are_audited(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, codes = await enrolled(account_panel, api)
    token = await challenge_token(account_panel)
    wrong = "000000" if code_at(secret, 1) != "000000" else "111111"
    for _ in range(totp.MAX_CHALLENGE_ATTEMPTS):
        response = await api.post(
            "/api/v1/auth/2fa/challenge", json={"token": token, "code": wrong}
        )
        assert response.status_code == 401
    right = await api.post("/api/v1/auth/2fa/challenge", json={"token": token, "code": codes[0]})
    assert right.status_code == 401
    async with account_panel.database.sessionmaker() as db:
        failures = (
            await db.execute(
                select(AuditLog).where(
                    AuditLog.action == "auth.2fa.challenge",
                    AuditLog.status == AuditStatus.FAILURE,
                )
            )
        ).scalars()
        assert len(list(failures)) == totp.MAX_CHALLENGE_ATTEMPTS


async def test_expired_or_foreign_purpose_tokens_are_refused(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    _, codes = await enrolled(account_panel, api)
    token = await challenge_token(account_panel)
    async with account_panel.database.sessionmaker() as db:
        await db.execute(
            update(OneTimeToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        # A password-reset token must never pass as a 2FA challenge.
        await db.execute(
            update(OneTimeToken)
            .where(OneTimeToken.purpose == TokenPurpose.RESET_PASSWORD)
            .values(expires_at=datetime.now(UTC) + timedelta(hours=1))
        )
        await db.commit()
    expired = await api.post("/api/v1/auth/2fa/challenge", json={"token": token, "code": codes[0]})
    assert expired.status_code == 401
    fresh = await challenge_token(account_panel)
    async with account_panel.database.sessionmaker() as db:
        await db.execute(
            update(OneTimeToken)
            .where(OneTimeToken.expires_at > datetime.now(UTC))
            .values(purpose=TokenPurpose.RESET_PASSWORD)
        )
        await db.commit()
    foreign = await api.post("/api/v1/auth/2fa/challenge", json={"token": fresh, "code": codes[0]})
    assert foreign.status_code == 401


async def test_hostile_challenge_bodies_get_4xx(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    await enrolled(account_panel, api)
    for body in (
        {"token": "x" * 300, "code": "123456"},
        {"token": "<script>alert(1)</script>", "code": "1" * 65},
        {"token": "abc"},
        {"token": "abc", "code": "' OR 1=1 --"},
    ):
        response = await api.post("/api/v1/auth/2fa/challenge", json=body)
        assert response.status_code in (401, 422), (body, response.text)
    bad_json = await api.post(
        "/api/v1/auth/2fa/challenge",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400


async def test_disabling_needs_the_password_and_a_code(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, codes = await enrolled(account_panel, api)
    wrong_password = await api.post(
        "/api/v1/auth/2fa/disable", json={"password": "nope", "code": codes[0]}
    )
    assert wrong_password.status_code == 422
    assert wrong_password.json()["error"]["errors"][0]["field"] == "password"
    no_code = await api.post("/api/v1/auth/2fa/disable", json={"password": PASSWORD, "code": "1"})
    assert no_code.status_code == 422
    done = await api.post(
        "/api/v1/auth/2fa/disable", json={"password": PASSWORD, "code": code_at(secret, 1)}
    )
    assert done.status_code == 204
    async with account_panel.database.sessionmaker() as db:
        user = (await db.execute(select(User))).scalar_one()
        assert not user.totp_enabled and user.totp_secret is None
        assert (await db.execute(select(RecoveryCode))).first() is None


async def test_new_recovery_codes_replace_the_old_ones(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, old = await enrolled(account_panel, api)
    response = await api.post("/api/v1/auth/2fa/recovery-codes", json={"code": code_at(secret, 1)})
    assert response.status_code == 200
    new = response.json()["data"]["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    stale = await api.post(
        "/api/v1/auth/2fa/challenge",
        json={"token": await challenge_token(account_panel), "code": old[0]},
    )
    assert stale.status_code == 401


async def test_two_factor_routes_need_a_session(api: httpx.AsyncClient) -> None:
    for path in ("/setup", "/enable", "/disable", "/recovery-codes"):
        response = await api.post(f"/api/v1/auth/2fa{path}", json={"code": "123456"})
        assert response.status_code == 401, path
    assert (await api.get("/api/v1/auth/2fa")).status_code == 401


async def test_sign_in_then_challenge_end_to_end(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, _ = await enrolled(account_panel, api)
    await forget_last_step(account_panel)
    async with account_panel.client() as browser:
        first = await browser.post(
            "/api/v1/auth/sign-in", json={"email": EMAIL, "password": PASSWORD}
        )
        data = first.json()["data"]
        assert data["twoFactorRequired"] is True and "user" not in data
        assert (await browser.get("/api/v1/auth/session")).status_code == 401
        second = await browser.post(
            "/api/v1/auth/2fa/challenge",
            json={"token": data["challengeToken"], "code": code_at(secret)},
        )
        assert second.status_code == 200
        assert (await browser.get("/api/v1/auth/session")).status_code == 200


async def test_wrong_codes_across_challenges_are_rate_limited_per_account(
    account_panel: AccountPanel, api: httpx.AsyncClient
) -> None:
    secret, codes = await enrolled(account_panel, api)
    wrong = "000000" if code_at(secret, 1) != "000000" else "111111"
    statuses: list[int] = []
    for _ in range(3):  # a fresh challenge (password known) every five wrong codes
        token = await challenge_token(account_panel)
        for _ in range(totp.MAX_CHALLENGE_ATTEMPTS):
            response = await api.post(
                "/api/v1/auth/2fa/challenge", json={"token": token, "code": wrong}
            )
            statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    assert int(response.headers["retry-after"]) >= 1
    # another address is not held back by this flood
    async with account_panel.client(ip="10.0.0.7") as elsewhere:
        ok = await elsewhere.post(
            "/api/v1/auth/2fa/challenge",
            json={"token": await challenge_token(account_panel), "code": codes[0]},
        )
        assert ok.status_code == 200, ok.text
