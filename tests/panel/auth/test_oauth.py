"""OAuth sign-in against a real provider on loopback (OIDC, GitHub and Discord dialects).

The panel runs over ASGI; the provider is a real HTTP server. Each test walks the redirects
between them the way a browser does: panel → provider's authorize → panel's callback.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.db.models import Account, AuditLog, Session, User
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.panel.auth.conftest import PASSWORD, AccountPanel, sign_in
from tests.support.oauth_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAuthProvider,
    Person,
    start_oauth_provider,
)

GRACE = "grace@example.test"


@pytest.fixture(scope="module")
def provider_server() -> Iterator[OAuthProvider]:
    """One provider for the module."""
    provider = start_oauth_provider()
    yield provider
    provider.stop()


@pytest.fixture
def provider(provider_server: OAuthProvider) -> OAuthProvider:
    """The provider, well-behaved at the start of each test."""
    provider_server.reset()
    return provider_server


@pytest.fixture
async def panel(
    provider: OAuthProvider, panel_database: Database, tmp_path: Path
) -> AsyncIterator[AccountPanel]:
    """A panel with GitHub, Discord and OIDC all pointed at the loopback provider."""
    settings = PanelSettings(
        data_dir=tmp_path,
        public_url="http://testserver",
        signup_policy="open",
        oauth_github_client_id=CLIENT_ID,
        oauth_github_client_secret=CLIENT_SECRET,
        oauth_github_url=provider.url,
        oauth_github_api_url=provider.url,
        oauth_discord_client_id=CLIENT_ID,
        oauth_discord_client_secret=CLIENT_SECRET,
        oauth_discord_url=provider.url,
        oauth_oidc_issuer=provider.url,
        oauth_oidc_client_id=CLIENT_ID,
        oauth_oidc_client_secret=CLIENT_SECRET,
        oauth_oidc_name="Keycloak <b>SSO</b>",
    )
    broker = MemoryBroker()
    app = create_app(settings, database=panel_database, broker=broker)
    async with LifespanManager(app) as manager:
        yield AccountPanel(app, manager.app, panel_database)
    await broker.close()


@pytest.fixture
async def visitor(panel: AccountPanel) -> AsyncIterator[httpx.AsyncClient]:
    """One browser (its own cookie jar)."""
    async with panel.client() as client:
        yield client


async def visit_provider(location: str) -> str:
    """Follow the panel's redirect to the provider over real HTTP; return where it sends us."""
    async with httpx.AsyncClient(timeout=10) as real:
        response = await real.get(location)
    assert response.status_code in (302, 303, 307), response.text
    return response.headers["location"]


async def round_trip(
    visitor: httpx.AsyncClient, provider_id: str = "oidc", next_url: str = "/servers"
) -> httpx.Response:
    """Start sign-in, approve at the provider, and land on the callback; return its answer."""
    start = await visitor.get(f"/api/v1/auth/oauth/{provider_id}/authorize?next={next_url}")
    assert start.status_code == 303, start.text
    return await visitor.get(await visit_provider(start.headers["location"]))


def flash_of(response: httpx.Response) -> str:
    """The flash message a redirect carries (the cookie's signed JSON payload)."""
    raw = response.cookies.get("stellar_flash") or ""
    payload = raw.split(".", 1)[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(data["f"][0]["m"])


async def count(panel: AccountPanel, model: type[object]) -> int:
    """Rows of a table."""
    async with panel.database.sessionmaker() as db:
        return len((await db.execute(select(model))).all())


async def test_oidc_sign_in_creates_an_account_when_sign_up_is_open(
    panel: AccountPanel, visitor: httpx.AsyncClient, provider: OAuthProvider
) -> None:
    landed = await round_trip(visitor)
    assert landed.status_code == 303 and landed.headers["location"] == "/servers"
    me = (await visitor.get("/api/v1/auth/session")).json()["data"]["user"]
    assert me["email"] == GRACE and me["emailVerified"] is True
    sent = provider.authorize_requests[0]
    assert sent["code_challenge_method"] == "S256" and sent["nonce"] and sent["state"]
    assert sent["redirect_uri"] == "http://testserver/api/v1/auth/oauth/oidc/callback"
    async with panel.database.sessionmaker() as db:
        account = (await db.execute(select(Account))).scalar_one()
        assert (account.provider, account.provider_account_id) == ("oidc", "1001")
        assert account.access_token is None  # nothing kept that we do not use


async def test_a_linked_identity_signs_in_again_as_the_same_user(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    await round_trip(visitor)
    async with panel.client() as other:
        again = await round_trip(other)
        assert again.status_code == 303
        assert (await other.get("/api/v1/auth/session")).status_code == 200
    assert await count(panel, User) == 1 and await count(panel, Session) == 2


@pytest.mark.parametrize(
    ("provider_id", "name"), [("github", "Grace Hopper"), ("discord", "Grace Hopper")]
)
async def test_github_and_discord_dialects_sign_in(
    visitor: httpx.AsyncClient, provider: OAuthProvider, provider_id: str, name: str
) -> None:
    landed = await round_trip(visitor, provider_id)
    assert landed.status_code == 303 and landed.headers["location"] == "/servers"
    me = (await visitor.get("/api/v1/auth/session")).json()["data"]["user"]
    assert me["email"] == GRACE and me["name"] == name
    assert "nonce" not in provider.authorize_requests[0]


async def test_an_email_matching_account_is_not_linked_silently(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    await panel.add_user(GRACE)
    landed = await round_trip(visitor)
    assert landed.headers["location"] == "/auth/signin"
    assert "link" in flash_of(landed) and "Settings" in flash_of(landed)
    assert await count(panel, Account) == 0
    assert (await visitor.get("/api/v1/auth/session")).status_code == 401


async def test_closed_sign_up_refuses_an_unknown_identity(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    panel.app.state.settings.signup_policy = "closed"
    landed = await round_trip(visitor)
    assert landed.headers["location"] == "/auth/signin"
    assert "does not accept new sign-ups" in flash_of(landed)
    assert await count(panel, User) == 0


async def test_missing_foreign_or_replayed_state_is_refused(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    start = await visitor.get("/api/v1/auth/oauth/oidc/authorize")
    callback = await visit_provider(start.headers["location"])
    parts = urlsplit(callback)
    state = parse_qs(parts.query)["state"][0]
    async with panel.client() as stranger:  # another browser: no state cookie
        foreign = await stranger.get(callback)
        assert (await stranger.get("/api/v1/auth/session")).status_code == 401
    assert (await visitor.get(callback)).headers["location"] == "/dashboard"  # no next given
    async with panel.client() as replayer:  # even with the cookie copied, a state works once
        replayer.cookies.set("stellar_oauth_state", state, path="/api/v1/auth/oauth")
        replayed = await replayer.get(callback)
        assert "expired or was already used" in flash_of(replayed)
        assert (await replayer.get("/api/v1/auth/session")).status_code == 401
    async with panel.client() as other:
        begun = await other.get("/api/v1/auth/oauth/oidc/authorize")
        code = parse_qs(urlsplit(await visit_provider(begun.headers["location"])).query)["code"]
        missing = await other.get(f"{parts.path}?code={code[0]}")
        wrong = await other.get(f"{parts.path}?code={code[0]}&state=forged-state-value")
    for response in (foreign, missing, wrong):
        assert response.headers["location"] == "/auth/signin"
        assert "not started in this browser" in flash_of(response)


async def test_provider_error_responses_become_a_message(
    visitor: httpx.AsyncClient, provider: OAuthProvider
) -> None:
    provider.deny = "access_denied"
    denied = await round_trip(visitor)
    assert "access_denied" in flash_of(denied)
    provider.deny, provider.token_error = None, True
    refused = await round_trip(visitor)
    assert "refused the sign-in code" in flash_of(refused)
    assert (await visitor.get("/api/v1/auth/session")).status_code == 401


@pytest.mark.parametrize("fault", ["bad_signature", "wrong_audience", "wrong_nonce"])
async def test_an_id_token_that_does_not_verify_is_refused(
    panel: AccountPanel, visitor: httpx.AsyncClient, provider: OAuthProvider, fault: str
) -> None:
    provider.id_token_fault = fault
    landed = await round_trip(visitor)
    assert landed.headers["location"] == "/auth/signin"
    assert "identity token" in flash_of(landed)
    assert await count(panel, User) == 0


async def test_link_from_settings_then_sign_in_with_it_then_unlink(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    await panel.add_user(GRACE)
    await sign_in(visitor, GRACE)
    start = await visitor.post("/api/v1/auth/oauth/oidc/link")
    assert start.status_code == 303
    linked = await visitor.get(await visit_provider(start.headers["location"]))
    assert linked.headers["location"] == "/settings/security"
    assert "is linked" in flash_of(linked)
    async with panel.client() as fresh:
        await round_trip(fresh)
        me = (await fresh.get("/api/v1/auth/session")).json()["data"]["user"]
        assert me["email"] == GRACE
    accounts = (await visitor.get("/api/v1/auth/oauth/accounts")).json()["data"]
    assert accounts == [{"provider": "oidc", "providerAccountId": "1001"}]
    assert (await visitor.delete("/api/v1/auth/oauth/accounts/oidc")).status_code == 204
    assert (await visitor.get("/api/v1/auth/oauth/accounts")).json()["data"] == []
    async with panel.database.sessionmaker() as db:
        actions = {a.action for a in (await db.execute(select(AuditLog))).scalars()}
    assert {"auth.oauth.link", "auth.oauth.unlink"} <= actions


async def test_an_identity_linked_to_someone_else_is_not_moved(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    await round_trip(visitor)  # grace's identity now belongs to the OAuth-made account
    await panel.add_user("mallory@example.test")
    async with panel.client() as mallory:
        await sign_in(mallory, "mallory@example.test")
        start = await mallory.post("/api/v1/auth/oauth/oidc/link")
        back = await mallory.get(await visit_provider(start.headers["location"]))
        assert "already linked to another account" in flash_of(back)
    async with panel.database.sessionmaker() as db:
        owner = (await db.execute(select(User).join(Account))).scalar_one()
    assert owner.email == GRACE


async def test_the_only_way_to_sign_in_cannot_be_unlinked(
    visitor: httpx.AsyncClient,
) -> None:
    await round_trip(visitor)  # an OAuth-only account: no password
    response = await visitor.delete("/api/v1/auth/oauth/accounts/oidc")
    assert response.status_code == 409
    assert "only way to sign in" in response.json()["error"]["detail"]
    assert (await visitor.delete("/api/v1/auth/oauth/accounts/github")).status_code == 404


async def test_two_factor_accounts_get_the_challenge_after_oauth(
    panel: AccountPanel, visitor: httpx.AsyncClient
) -> None:
    await round_trip(visitor)
    async with panel.database.sessionmaker() as db:
        await db.execute(update(User).values(totp_enabled=True, totp_secret="x"))
        await db.commit()
    async with panel.client() as again:
        landed = await round_trip(again)
        assert landed.headers["location"] == "/auth/two-factor?next=%2Fservers"
        assert landed.cookies.get("stellar_2fa")
        assert (await again.get("/api/v1/auth/session")).status_code == 401


async def test_providers_are_listed_and_unknown_ones_are_404(
    visitor: httpx.AsyncClient,
) -> None:
    listed = (await visitor.get("/api/v1/auth/oauth/providers")).json()["data"]
    assert [p["id"] for p in listed] == ["github", "discord", "oidc"]
    assert (await visitor.get("/api/v1/auth/oauth/gitlab/authorize")).status_code == 404
    assert (await visitor.get("/api/v1/auth/oauth/../../x/authorize")).status_code == 404


async def test_html_in_a_provider_name_is_stored_as_text(
    visitor: httpx.AsyncClient, provider: OAuthProvider
) -> None:
    provider.person = Person(name="<script>alert(1)</script>")
    await round_trip(visitor)
    me = (await visitor.get("/api/v1/auth/session")).json()["data"]["user"]
    assert me["name"] == "<script>alert(1)</script>"
    page = await visitor.get("/settings/security")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "Keycloak &lt;b&gt;SSO&lt;/b&gt;" in page.text


async def test_unlinking_needs_a_session(visitor: httpx.AsyncClient) -> None:
    assert (await visitor.delete("/api/v1/auth/oauth/accounts/oidc")).status_code == 401
    assert (await visitor.post("/api/v1/auth/oauth/oidc/link")).status_code == 401
    assert PASSWORD
