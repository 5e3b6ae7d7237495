"""Email over a real SMTP server: password reset and verification links, single use, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from stellarstack.panel.auth.mailer import Mailer, verification_mail
from stellarstack.panel.db.models import OneTimeToken
from stellarstack.panel.errors import DependencyUnavailable
from stellarstack.settings import PanelSettings
from tests.panel.auth.conftest import PASSWORD, AccountPanel, Inbox, link_in, sign_in, token_in

SENT = "If an account uses this address, we have sent it a link. Check your inbox."


async def test_reset_link_sets_a_new_password_once_and_ends_every_session(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(ip="198.51.100.1") as laptop:
        await sign_in(laptop, "ada@example.test")
        response = await api.post(
            "/api/v1/auth/forgot-password", json={"email": "ada@example.test"}
        )
        assert response.status_code == 202 and response.json()["data"]["message"] == SENT
        message = await inbox.wait_for("ada@example.test")
        assert message["Subject"] == "Reset your password"
        assert link_in(message).startswith("/auth/reset?token=")
        token = token_in(message)
        body = {"token": token, "password": "a brand new passphrase"}
        assert (await api.post("/api/v1/auth/reset-password", json=body)).status_code == 200
        assert (await laptop.get("/api/v1/auth/session")).status_code == 401
    again = await api.post("/api/v1/auth/reset-password", json={**body, "password": "another one!"})
    assert again.status_code == 400
    await sign_in(api, "ada@example.test", "a brand new passphrase")


async def test_unknown_and_known_addresses_get_the_same_reset_answer(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    known = await api.post("/api/v1/auth/forgot-password", json={"email": "ada@example.test"})
    unknown = await api.post("/api/v1/auth/forgot-password", json={"email": "no@example.test"})
    hostile = await api.post("/api/v1/auth/forgot-password", json={"email": "<x>\r\nBcc: a@b.c"})
    assert known.status_code == unknown.status_code == hostile.status_code == 202
    assert known.json() == unknown.json() == hostile.json()
    await account_panel.drain_mail()
    assert [m["To"] for m in inbox.messages] == ["ada@example.test"]


async def test_only_the_latest_reset_link_works(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    for _ in range(2):
        await api.post("/api/v1/auth/forgot-password", json={"email": "ada@example.test"})
    first = token_in(await inbox.wait_for("ada@example.test", 1))
    second = token_in(await inbox.wait_for("ada@example.test", 2))
    old = await api.post(
        "/api/v1/auth/reset-password", json={"token": first, "password": "new pass 1"}
    )
    assert old.status_code == 400
    new = await api.post(
        "/api/v1/auth/reset-password", json={"token": second, "password": "new pass 2"}
    )
    assert new.status_code == 200


async def test_an_expired_reset_link_is_refused(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    await api.post("/api/v1/auth/forgot-password", json={"email": "ada@example.test"})
    token = token_in(await inbox.wait_for("ada@example.test"))
    async with account_panel.database.sessionmaker() as db:
        past = datetime.now(UTC) - timedelta(minutes=1)
        await db.execute(update(OneTimeToken).values(expires_at=past))
        await db.commit()
    response = await api.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": "new pass 1"}
    )
    assert response.status_code == 400
    assert "expired" in response.json()["error"]["detail"]


async def test_a_reset_token_cannot_verify_an_email_and_vice_versa(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    await api.post("/api/v1/auth/forgot-password", json={"email": "ada@example.test"})
    reset = token_in(await inbox.wait_for("ada@example.test"))
    assert (await api.post("/api/v1/auth/verify-email", json={"token": reset})).status_code == 400
    # The reset token was not burnt by the wrong use.
    ok = await api.post(
        "/api/v1/auth/reset-password", json={"token": reset, "password": "new pass 1"}
    )
    assert ok.status_code == 200


async def test_a_weak_new_password_keeps_the_reset_link_usable(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    await api.post("/api/v1/auth/forgot-password", json={"email": "ada@example.test"})
    token = token_in(await inbox.wait_for("ada@example.test"))
    weak = await api.post("/api/v1/auth/reset-password", json={"token": token, "password": "short"})
    assert weak.status_code == 422
    good = await api.post(
        "/api/v1/auth/reset-password", json={"token": token, "password": "long enough"}
    )
    assert good.status_code == 200


async def test_an_email_change_takes_effect_only_when_the_new_address_confirms(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await account_panel.add_user("ada@example.test")
    await sign_in(api, "ada@example.test")
    wrong = await api.patch("/api/v1/users/me", json={"email": "new@example.test"})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["errors"][0]["field"] == "currentPassword"
    response = await api.patch(
        "/api/v1/users/me", json={"email": "New@Example.test", "currentPassword": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["data"]["email"] == "ada@example.test"
    assert response.json()["meta"] == {"pendingEmail": "new@example.test"}
    token = token_in(await inbox.wait_for("new@example.test"))
    assert (await api.post("/api/v1/auth/verify-email", json={"token": token})).status_code == 200
    assert (await api.get("/api/v1/users/me")).json()["data"]["email"] == "new@example.test"


async def test_resending_verification_answers_the_same_for_any_address(
    account_panel: AccountPanel, api: httpx.AsyncClient, inbox: Inbox
) -> None:
    await api.post(
        "/api/v1/auth/sign-up", json={"email": "new@example.test", "password": "long enough"}
    )
    await inbox.wait_for("new@example.test")
    first = await api.post("/api/v1/auth/verify-email/resend", json={"email": "new@example.test"})
    other = await api.post("/api/v1/auth/verify-email/resend", json={"email": "no@example.test"})
    assert first.status_code == other.status_code == 202 and first.json() == other.json()
    await inbox.wait_for("new@example.test", 2)


async def test_an_unreachable_smtp_server_is_a_503_with_a_way_forward(tmp_path: object) -> None:
    settings = PanelSettings(smtp_host="127.0.0.1", smtp_port=1, smtp_security="none")
    with pytest.raises(DependencyUnavailable, match="mail server is unavailable"):
        await Mailer(settings).send(verification_mail("http://x", "a@example.test", "t"))


async def test_without_smtp_the_link_is_logged_for_the_operator(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    await Mailer(PanelSettings()).send(verification_mail("http://x", "a@example.test", "tok"))
    # structlog prints (unconfigured) or routes through logging (configured by the CLI)
    logged = capsys.readouterr().out + caplog.text
    assert "http://x/auth/verify?token=tok" in logged
