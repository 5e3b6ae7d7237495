"""The sign-in form: sessions, safe redirects, generic errors, sign-out."""

from __future__ import annotations

import httpx
import pytest

from tests.panel.web.conftest import PASSWORD, Accounts, sign_in

GENERIC_ERROR = "The email or password is incorrect."


async def test_valid_credentials_open_a_session_and_go_to_the_dashboard(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    response = await web_client.post(
        "/auth/signin", data={"email": accounts.admin_email, "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert "stellar_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert (await web_client.get("/dashboard")).status_code == 200


async def test_email_is_matched_case_insensitively(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    response = await web_client.post(
        "/auth/signin", data={"email": "  Admin@Example.TEST ", "password": PASSWORD}
    )
    assert response.status_code == 303


async def test_a_safe_next_is_followed(web_client: httpx.AsyncClient, accounts: Accounts) -> None:
    response = await web_client.post(
        "/auth/signin",
        data={"email": accounts.user_email, "password": PASSWORD, "next": "/servers/abc/console"},
    )
    assert response.headers["location"] == "/servers/abc/console"


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example", "/\\evil.example", "/\t/evil.example"]
)
async def test_an_unsafe_next_is_ignored(
    web_client: httpx.AsyncClient, accounts: Accounts, target: str
) -> None:
    response = await web_client.post(
        "/auth/signin", data={"email": accounts.user_email, "password": PASSWORD, "next": target}
    )
    assert response.headers["location"] == "/dashboard"


async def test_the_form_keeps_a_safe_next_and_drops_an_unsafe_one(
    web_client: httpx.AsyncClient,
) -> None:
    kept = await web_client.get("/auth/signin?next=/servers")
    assert 'name="next" value="/servers"' in kept.text
    dropped = await web_client.get("/auth/signin?next=//evil.example")
    assert 'name="next"' not in dropped.text


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("player@example.test", "wrong password"),
        ("nobody@example.test", PASSWORD),
        ("", ""),
        ("player@example.test", ""),
        ("player@example.test", "x" * 5000),
    ],
)
async def test_bad_credentials_get_the_same_generic_error(
    web_client: httpx.AsyncClient, accounts: Accounts, email: str, password: str
) -> None:
    response = await web_client.post("/auth/signin", data={"email": email, "password": password})
    assert response.status_code == 401
    assert GENERIC_ERROR in response.text
    assert "stellar_session" not in response.headers.get("set-cookie", "")
    assert f'value="{email}"' in response.text


async def test_a_non_form_body_is_a_401_not_a_500(web_client: httpx.AsyncClient) -> None:
    response = await web_client.post("/auth/signin", json={"email": 1, "password": ["x"]})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")


async def test_the_kept_email_is_escaped(web_client: httpx.AsyncClient) -> None:
    email = '"><script>alert(1)</script>'
    response = await web_client.post("/auth/signin", data={"email": email, "password": "x"})
    assert response.status_code == 401
    assert "<script>alert(1)" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text


async def test_a_suspended_account_is_told_so(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    response = await web_client.post(
        "/auth/signin", data={"email": accounts.suspended_email, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "suspended" in response.text


async def test_a_form_posted_from_another_site_is_refused(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    response = await web_client.post(
        "/auth/signin",
        data={"email": accounts.user_email, "password": PASSWORD},
        headers={"origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "stellar_session" not in response.headers.get("set-cookie", "")


async def test_a_signed_in_visitor_skips_the_form(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.user_email)
    response = await web_client.get("/auth/signin?next=/settings")
    assert response.status_code == 303
    assert response.headers["location"] == "/settings"


async def test_sign_out_ends_the_session_and_says_so(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.user_email)
    token = web_client.cookies["stellar_session"]
    response = await web_client.post("/auth/signout")
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/signin"
    page = await web_client.get("/auth/signin")
    assert "You have been signed out." in page.text
    assert "stellar_flash=" in page.headers["set-cookie"]  # shown once, then cleared
    web_client.cookies.set("stellar_session", token)  # the old token no longer works
    assert (await web_client.get("/dashboard")).status_code == 303


async def test_sign_out_from_another_site_is_refused(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.user_email)
    response = await web_client.post("/auth/signout", headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert (await web_client.get("/dashboard")).status_code == 200
