"""CSRF: cookie-authenticated changes need the token and this site's Origin; keys are exempt."""

from __future__ import annotations

import httpx
import pytest

from tests.panel.auth.conftest import AccountPanel, sign_in


@pytest.fixture
async def signed_in(account_panel: AccountPanel) -> httpx.AsyncClient:
    """A client signed in through the API that does NOT add the CSRF header by itself."""
    await account_panel.add_user("ada@example.test", name="Ada")
    client = account_panel.client(csrf=False)
    await sign_in(client, "ada@example.test")
    return client


async def _rename(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.patch("/api/v1/users/me", json={"name": "Changed"}, headers=headers)


async def test_every_response_hands_the_browser_a_readable_lax_token_cookie(
    account_panel: AccountPanel,
) -> None:
    async with account_panel.client(csrf=False) as client:
        response = await client.get("/health")
    cookie = next(c for c in response.headers.get_list("set-cookie") if "stellar_csrf=" in c)
    assert "SameSite=Lax" in cookie and "HttpOnly" not in cookie


async def test_a_cookie_authenticated_change_without_the_token_is_refused(
    signed_in: httpx.AsyncClient,
) -> None:
    response = await _rename(signed_in)
    assert response.status_code == 403
    assert response.json()["error"]["type"].endswith("csrf-failed")
    assert (await signed_in.get("/api/v1/users/me")).json()["data"]["name"] == "Ada"


@pytest.mark.parametrize("token", ["wrong-token-of-a-plausible-length-xyz", "", "%" * 30])
async def test_a_wrong_token_is_refused(signed_in: httpx.AsyncClient, token: str) -> None:
    response = await _rename(signed_in, **{"x-csrf-token": token})
    assert response.status_code == 403


async def test_the_matching_token_in_the_header_is_accepted(signed_in: httpx.AsyncClient) -> None:
    token = signed_in.cookies["stellar_csrf"]
    response = await _rename(signed_in, **{"x-csrf-token": token})
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Changed"


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://testserver.evil.example", "garbage"]
)
async def test_a_foreign_origin_is_refused_even_with_the_token(
    signed_in: httpx.AsyncClient, origin: str
) -> None:
    token = signed_in.cookies["stellar_csrf"]
    response = await _rename(signed_in, **{"x-csrf-token": token, "origin": origin})
    assert response.status_code == 403


async def test_a_foreign_referer_is_refused_when_there_is_no_origin(
    signed_in: httpx.AsyncClient,
) -> None:
    token = signed_in.cookies["stellar_csrf"]
    response = await _rename(
        signed_in, **{"x-csrf-token": token, "referer": "https://evil.example/page"}
    )
    assert response.status_code == 403


async def test_this_panels_own_origin_is_accepted(signed_in: httpx.AsyncClient) -> None:
    token = signed_in.cookies["stellar_csrf"]
    response = await _rename(signed_in, **{"x-csrf-token": token, "origin": "http://testserver"})
    assert response.status_code == 200


async def test_sign_in_from_another_site_is_refused(account_panel: AccountPanel) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(csrf=False) as client:
        response = await client.post(
            "/api/v1/auth/sign-in",
            json={"email": "ada@example.test", "password": "correct horse battery staple"},
            headers={"origin": "https://evil.example"},
        )
    assert response.status_code == 403
    assert "stellar_session" not in response.headers.get("set-cookie", "")


async def test_a_form_field_token_is_accepted_and_the_body_still_reaches_the_page(
    account_panel: AccountPanel,
) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(csrf=False) as client:
        form = await client.get("/auth/signin")
        token = client.cookies["stellar_csrf"]
        assert f'name="csrf_token" value="{token}"' in form.text
        signed = await client.post(
            "/auth/signin",
            data={
                "email": "ada@example.test",
                "password": "correct horse battery staple",
                "csrf_token": token,
            },
        )
        assert signed.status_code == 303
        refused = await client.post("/auth/signout", headers={"accept": "text/html"})
        assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
        out = await client.post("/auth/signout", data={"csrf_token": token})
        assert out.status_code == 303


async def test_bearer_requests_are_exempt_from_the_token(signed_in: httpx.AsyncClient) -> None:
    # Whatever the key is worth (the API-key work judges it), CSRF does not stop it: no 403.
    response = await _rename(signed_in, authorization="Bearer strk_not_a_real_key")
    assert response.status_code != 403


async def test_safe_methods_need_no_token(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.get("/api/v1/users/me", headers={"origin": "https://evil.example"})
    assert response.status_code == 200
