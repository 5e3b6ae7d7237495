"""Page routes: public pages, the sign-in detour, admin-only pages, escaping, error pages."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.panel.web.conftest import HOSTILE_NAME, Accounts, sign_in

SIGNED_IN_PAGES = [
    "/dashboard",
    "/servers",
    "/settings",
]
ADMIN_PAGES = ["/admin", "/nodes"]


def assert_page(response: httpx.Response, status: int = 200) -> str:
    """An HTML page with our layout, our CSP and only external scripts."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = response.text
    assert "<!doctype html>" in text
    scripts = re.findall(r"<script[^>]*>", text)
    assert scripts and all("src=" in tag for tag in scripts), scripts
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    return text


async def test_landing_page_says_what_it_is_and_offers_sign_in(
    web_client: httpx.AsyncClient,
) -> None:
    text = assert_page(await web_client.get("/"))
    assert "StellarStack" in text
    assert 'href="/auth/signin"' in text
    assert "Open dashboard" not in text


async def test_landing_page_links_a_signed_in_user_to_the_dashboard(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get("/"))
    assert 'href="/dashboard"' in text
    assert "Pat Player" in text


async def test_sign_up_page_says_when_sign_up_is_closed(web_client: httpx.AsyncClient) -> None:
    text = assert_page(await web_client.get("/auth/signup"))
    assert "Sign-up is closed on this" in text


@pytest.mark.parametrize("path", SIGNED_IN_PAGES + ADMIN_PAGES)
async def test_anonymous_visitors_are_sent_to_sign_in_and_back(
    web_client: httpx.AsyncClient, path: str
) -> None:
    response = await web_client.get(path)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/auth/signin?next=")
    assert httpx.URL(location).params["next"] == path


async def test_an_expired_or_forged_session_counts_as_anonymous(
    web_client: httpx.AsyncClient,
) -> None:
    web_client.cookies.set("stellar_session", "not-a-real-token")
    response = await web_client.get("/dashboard")
    assert response.status_code == 303


async def test_htmx_requests_are_redirected_with_a_header(web_client: httpx.AsyncClient) -> None:
    response = await web_client.get("/dashboard", headers={"hx-request": "true"})
    assert response.headers["hx-redirect"].startswith("/auth/signin?next=")


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
async def test_signed_in_pages_render_for_a_user(
    web_client: httpx.AsyncClient, accounts: Accounts, path: str
) -> None:
    await sign_in(web_client, accounts.user_email)
    response = await web_client.get(path)
    text = assert_page(response)
    assert accounts.user_email in text
    assert response.headers["cache-control"] == "no-store"
    assert 'href="/admin"' not in text  # no admin links for a plain user


async def test_dashboard_shows_who_is_signed_in(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.admin_email)
    text = assert_page(await web_client.get("/dashboard"))
    assert "Welcome back, Ada Admin" in text
    assert 'aria-current="page"' in text
    assert 'href="/admin"' in text and 'href="/nodes"' in text


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_admin_pages_are_forbidden_to_plain_users(
    web_client: httpx.AsyncClient, accounts: Accounts, path: str
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get(path), 403)
    assert "Only administrators can open this page." in text


async def test_admin_page_counts_the_users(
    web_client: httpx.AsyncClient, accounts: Accounts
) -> None:
    await sign_in(web_client, accounts.admin_email)
    text = assert_page(await web_client.get("/admin"))
    assert re.search(r'data-testid="user-count">\s*4\s*<', text)
    assert_page(await web_client.get("/nodes"))


@pytest.mark.parametrize("path", ["/", "/dashboard", "/settings", "/servers"])
async def test_a_user_name_made_of_html_is_escaped(
    web_client: httpx.AsyncClient, accounts: Accounts, path: str
) -> None:
    await sign_in(web_client, accounts.hostile_email)
    text = assert_page(await web_client.get(path))
    assert HOSTILE_NAME not in text
    assert "&lt;script&gt;" in text


@pytest.mark.parametrize(
    "server_id",
    ["%3Cscript%3Ealert(1)%3C%2Fscript%3E", "..%2F..%2Fetc%2Fpasswd", "a%20b", "x" * 65, "%00"],
)
async def test_odd_server_ids_get_a_404_page(
    web_client: httpx.AsyncClient, accounts: Accounts, server_id: str
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get(f"/servers/{server_id}"), 404)
    assert "<script>alert(1)" not in text


async def test_unknown_pages_get_an_html_404_for_browsers(web_client: httpx.AsyncClient) -> None:
    text = assert_page(await web_client.get("/no/such/page"), 404)
    assert "Page not found" in text


async def test_api_clients_keep_json_errors(web_client: httpx.AsyncClient) -> None:
    response = await web_client.get("/api/v1/no-such-thing", headers={"accept": "*/*"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await web_client.get("/no/such/page", headers={"accept": "application/json"})
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "query", ["next=%00", "next=" + "a" * 10000, "next=%ff%fe", "next=//evil&next=/x"]
)
async def test_odd_query_strings_never_break_the_sign_in_page(
    web_client: httpx.AsyncClient, query: str
) -> None:
    response = await web_client.get(f"/auth/signin?{query}")
    assert response.status_code in (200, 400)
    assert response.headers["content-type"].startswith("text/html")
    assert "evil" not in response.text
