"""OAuth sign-in (GitHub, Discord, generic OpenID Connect) and account linking.

The authorization-code flow with PKCE (S256). The `state` is random, stored hashed as a
one-time token (with the PKCE verifier and the OIDC nonce) and bound to the browser by a
cookie holding the same value: a callback whose state is missing, foreign, expired or used
before is refused. An OIDC `id_token` is verified against the issuer's JWKS (signature,
issuer, audience, expiry, nonce). A provider identity whose email matches an existing account
is never linked silently: that person signs in with their password and links from settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth.service import find_user_by_email
from stellarstack.panel.auth.sessions import hash_token
from stellarstack.panel.db.enums import ActorType, TokenPurpose
from stellarstack.panel.db.models import Account, OneTimeToken, User
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.subusers.service import claim_invitations
from stellarstack.panel.errors import BadRequest, Conflict, NotFound
from stellarstack.settings import PanelSettings

__all__ = [
    "STATE_LIFETIME",
    "Identity",
    "OAuthFailed",
    "Provider",
    "begin_authorization",
    "claim_state",
    "configured_providers",
    "fetch_identity",
    "find_provider",
    "link_identity",
    "linked_accounts",
    "sign_in_identity",
    "unlink_provider",
]

log = get_logger(__name__)

STATE_LIFETIME = timedelta(minutes=10)
HTTP_TIMEOUT = 10.0
DISCOVERY_TTL = 3600.0
# Asymmetric algorithms only: an id_token may never pick HMAC with a public key, or "none".
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
Intent = Literal["signin", "link"]


class OAuthFailed(BadRequest):
    """The provider or the callback did not produce an identity we can trust (400)."""

    slug = "oauth-failed"


@dataclass(frozen=True, slots=True)
class Provider:
    """One configured sign-in provider."""

    id: str
    name: str
    kind: Literal["github", "discord", "oidc"]
    client_id: str
    client_secret: str
    base_url: str
    api_url: str = ""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says the person is."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def configured_providers(settings: PanelSettings) -> list[Provider]:
    """The providers with a client id and secret set (none: the buttons are hidden)."""
    providers: list[Provider] = []
    s = settings
    if s.oauth_github_client_id and s.oauth_github_client_secret:
        providers.append(
            Provider(
                "github",
                "GitHub",
                "github",
                s.oauth_github_client_id,
                s.oauth_github_client_secret,
                s.oauth_github_url.rstrip("/"),
                s.oauth_github_api_url.rstrip("/"),
            )
        )
    if s.oauth_discord_client_id and s.oauth_discord_client_secret:
        providers.append(
            Provider(
                "discord",
                "Discord",
                "discord",
                s.oauth_discord_client_id,
                s.oauth_discord_client_secret,
                s.oauth_discord_url.rstrip("/"),
            )
        )
    if s.oauth_oidc_issuer and s.oauth_oidc_client_id and s.oauth_oidc_client_secret:
        providers.append(
            Provider(
                "oidc",
                s.oauth_oidc_name,
                "oidc",
                s.oauth_oidc_client_id,
                s.oauth_oidc_client_secret,
                s.oauth_oidc_issuer.rstrip("/"),
            )
        )
    return providers


def find_provider(settings: PanelSettings, provider_id: str) -> Provider:
    """A configured provider by id; 404 when it is not configured."""
    for provider in configured_providers(settings):
        if provider.id == provider_id:
            return provider
    raise NotFound("That sign-in provider is not configured on this panel.")


async def _get_json(client: httpx.AsyncClient, provider: Provider, url: str, **kw: Any) -> Any:
    try:
        response = await client.get(url, **kw)
    except httpx.HTTPError as exc:
        log.warning("oauth.provider_unreachable", provider=provider.id, error=repr(exc))
        raise OAuthFailed(f"{provider.name} could not be reached. Try again later.") from None
    if response.status_code != 200:
        log.warning("oauth.provider_error", provider=provider.id, status=response.status_code)
        raise OAuthFailed(f"{provider.name} answered with an error ({response.status_code}).")
    try:
        return response.json()
    except ValueError:
        raise OAuthFailed(f"{provider.name} sent an answer that is not JSON.") from None


_discovery: dict[str, tuple[float, dict[str, Any]]] = {}


async def _oidc_document(client: httpx.AsyncClient, provider: Provider) -> dict[str, Any]:
    cached = _discovery.get(provider.base_url)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    url = f"{provider.base_url}/.well-known/openid-configuration"
    document = await _get_json(client, provider, url)
    required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    if not isinstance(document, dict) or any(
        not isinstance(document.get(k), str) for k in required
    ):
        raise OAuthFailed(f"{provider.name}'s discovery document is incomplete.")
    if document["issuer"].rstrip("/") != provider.base_url:
        raise OAuthFailed(f"{provider.name}'s discovery document names another issuer.")
    _discovery[provider.base_url] = (time.monotonic(), document)
    return document


async def _endpoints(client: httpx.AsyncClient, provider: Provider) -> tuple[str, str]:
    if provider.kind == "github":
        return f"{provider.base_url}/login/oauth/authorize", (
            f"{provider.base_url}/login/oauth/access_token"
        )
    if provider.kind == "discord":
        return f"{provider.base_url}/oauth2/authorize", f"{provider.base_url}/api/oauth2/token"
    document = await _oidc_document(client, provider)
    return document["authorization_endpoint"], document["token_endpoint"]


SCOPES = {
    "github": "read:user user:email",
    "discord": "identify email",
    "oidc": "openid email profile",
}


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def begin_authorization(
    db: AsyncSession,
    provider: Provider,
    *,
    redirect_uri: str,
    intent: Intent,
    next_url: str,
    user_id: uuid.UUID | None = None,
) -> tuple[str, str]:
    """Record a new state (+ PKCE verifier, nonce); return (provider URL, state for the cookie)."""
    now = datetime.now(UTC)
    await db.execute(
        delete(OneTimeToken).where(
            OneTimeToken.purpose == TokenPurpose.OAUTH_STATE, OneTimeToken.expires_at < now
        )
    )
    state, verifier, nonce = (
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(16),
    )
    db.add(
        OneTimeToken(
            user_id=user_id,
            purpose=TokenPurpose.OAUTH_STATE,
            token_hash=hash_token(state),
            expires_at=now + STATE_LIFETIME,
            data={
                "provider": provider.id,
                "verifier": verifier,
                "nonce": nonce,
                "intent": intent,
                "next": next_url,
            },
        )
    )
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        authorize_url, _ = await _endpoints(client, provider)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPES[provider.kind],
        "state": state,
        "code_challenge": _pkce_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if provider.kind == "oidc":
        params["nonce"] = nonce
    separator = "&" if "?" in authorize_url else "?"
    await db.flush()
    return f"{authorize_url}{separator}{urlencode(params)}", state


async def claim_state(
    db: AsyncSession, provider: Provider, state: str | None, cookie_state: str | None
) -> OneTimeToken:
    """Use up the state of a callback: it must match this browser's cookie, once, in time."""
    if not state or not cookie_state or len(state) > 256:
        raise OAuthFailed("This sign-in was not started in this browser. Start again.")
    if not hmac.compare_digest(state.encode(), cookie_state.encode()):
        raise OAuthFailed("This sign-in was not started in this browser. Start again.")
    claimed = await db.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.token_hash == hash_token(state),
            OneTimeToken.purpose == TokenPurpose.OAUTH_STATE,
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > datetime.now(UTC),
        )
        .values(used_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise OAuthFailed("This sign-in link has expired or was already used. Start again.")
    row = (
        await db.execute(select(OneTimeToken).where(OneTimeToken.token_hash == hash_token(state)))
    ).scalar_one()
    if row.data.get("provider") != provider.id:
        raise OAuthFailed("This sign-in was started with another provider. Start again.")
    return row


async def _exchange_code(
    client: httpx.AsyncClient, provider: Provider, code: str, verifier: str, redirect_uri: str
) -> dict[str, Any]:
    _, token_url = await _endpoints(client, provider)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "code_verifier": verifier,
    }
    try:
        response = await client.post(token_url, data=form, headers={"Accept": "application/json"})
        tokens = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("oauth.token_exchange_failed", provider=provider.id, error=repr(exc))
        raise OAuthFailed(f"{provider.name} did not complete the sign-in. Try again.") from None
    if response.status_code != 200 or not isinstance(tokens, dict) or "error" in tokens:
        error = tokens.get("error") if isinstance(tokens, dict) else None
        log.warning("oauth.token_refused", provider=provider.id, error=str(error)[:100])
        raise OAuthFailed(f"{provider.name} refused the sign-in code. Start again.")
    if not isinstance(tokens.get("access_token"), str):
        raise OAuthFailed(f"{provider.name} sent no access token.")
    return tokens


async def _github_identity(
    client: httpx.AsyncClient, provider: Provider, access_token: str
) -> Identity:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    user = await _get_json(client, provider, f"{provider.api_url}/user", headers=headers)
    emails = await _get_json(client, provider, f"{provider.api_url}/user/emails", headers=headers)
    primary = (
        next(
            (e for e in emails if isinstance(e, dict) and e.get("primary") and e.get("verified")),
            None,
        )
        if isinstance(emails, list)
        else None
    )
    if not isinstance(user, dict) or user.get("id") is None:
        raise OAuthFailed("GitHub did not say who you are.")
    return Identity(
        provider.id,
        str(user["id"]),
        primary["email"] if primary else None,
        primary is not None,
        user.get("name") or user.get("login"),
    )


async def _discord_identity(
    client: httpx.AsyncClient, provider: Provider, access_token: str
) -> Identity:
    headers = {"Authorization": f"Bearer {access_token}"}
    user = await _get_json(client, provider, f"{provider.base_url}/api/users/@me", headers=headers)
    if not isinstance(user, dict) or user.get("id") is None:
        raise OAuthFailed("Discord did not say who you are.")
    return Identity(
        provider.id,
        str(user["id"]),
        user.get("email"),
        user.get("verified") is True,
        user.get("global_name") or user.get("username"),
    )


async def _verify_id_token(
    client: httpx.AsyncClient, provider: Provider, id_token: str, nonce: str
) -> dict[str, Any]:
    document = await _oidc_document(client, provider)
    jwks = await _get_json(client, provider, document["jwks_uri"])
    try:
        key_set = jwt.PyJWKSet.from_dict(jwks)
        kid = jwt.get_unverified_header(id_token).get("kid")
        keys = [k for k in key_set.keys if kid is None or k.key_id == kid]
        if not keys:
            raise jwt.InvalidTokenError("no key in the JWKS matches the token's kid")
        claims: dict[str, Any] = jwt.decode(
            id_token,
            keys[0],
            algorithms=ID_TOKEN_ALGORITHMS,
            audience=provider.client_id,
            issuer=document["issuer"],
            leeway=60,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        log.warning("oauth.id_token_rejected", provider=provider.id, error=str(exc)[:200])
        raise OAuthFailed(f"{provider.name} sent an identity token that does not verify.") from None
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise OAuthFailed(f"{provider.name}'s identity token belongs to another sign-in.")
    return claims


async def _oidc_identity(
    client: httpx.AsyncClient, provider: Provider, tokens: dict[str, Any], nonce: str
) -> Identity:
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise OAuthFailed(f"{provider.name} sent no identity token.")
    claims = await _verify_id_token(client, provider, id_token, nonce)
    document = await _oidc_document(client, provider)
    userinfo_url = document.get("userinfo_endpoint")
    if "email" not in claims and isinstance(userinfo_url, str):
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        info = await _get_json(client, provider, userinfo_url, headers=headers)
        if isinstance(info, dict) and info.get("sub") == claims["sub"]:
            claims = {**info, **claims}
    email = claims.get("email")
    return Identity(
        provider.id,
        str(claims["sub"]),
        email if isinstance(email, str) else None,
        claims.get("email_verified") is True,
        claims.get("name") or claims.get("preferred_username"),
    )


async def fetch_identity(
    provider: Provider, code: str, state_row: OneTimeToken, *, redirect_uri: str
) -> Identity:
    """Exchange the code (with the PKCE verifier) and learn who signed in."""
    if not code or len(code) > 2048:
        raise OAuthFailed(f"{provider.name} sent no sign-in code. Start again.")
    data = state_row.data
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        tokens = await _exchange_code(client, provider, code, data["verifier"], redirect_uri)
        if provider.kind == "github":
            return await _github_identity(client, provider, tokens["access_token"])
        if provider.kind == "discord":
            return await _discord_identity(client, provider, tokens["access_token"])
        return await _oidc_identity(client, provider, tokens, data["nonce"])


async def _account_of(db: AsyncSession, identity: Identity) -> Account | None:
    query = select(Account).where(
        Account.provider == identity.provider,
        Account.provider_account_id == identity.subject[:255],
    )
    return (await db.execute(query)).scalar_one_or_none()


async def sign_in_identity(
    db: AsyncSession, provider: Provider, identity: Identity, *, signup_open: bool
) -> User:
    """The user a provider identity signs in as: linked, or new when sign-up is open."""
    account = await _account_of(db, identity)
    if account is not None:
        user = await db.get(User, account.user_id)
        assert user is not None
        return user
    if identity.email and await find_user_by_email(db, identity.email) is not None:
        raise OAuthFailed(
            f"An account with this email address already exists. Sign in with your password, "
            f"then link {provider.name} under Settings → Security."
        )
    if not signup_open:
        raise OAuthFailed(
            f"No account is linked to this {provider.name} identity, and this panel does not "
            "accept new sign-ups. Ask an administrator for an account."
        )
    if not identity.email or not identity.email_verified:
        raise OAuthFailed(f"{provider.name} did not share a verified email address.")
    user = User(email=identity.email, name=(identity.name or "")[:255] or None, email_verified=True)
    db.add(user)
    await db.flush()
    db.add(
        Account(user_id=user.id, provider=provider.id, provider_account_id=identity.subject[:255])
    )
    await db.flush()
    log.info("oauth.user_created", provider=provider.id, user_id=str(user.id))
    await claim_invitations(db, user)
    return user


async def link_identity(
    db: AsyncSession, user: User, provider: Provider, identity: Identity, *, ip: str | None
) -> bool:
    """Link a provider identity to a signed-in user; False when it already was."""
    account = await _account_of(db, identity)
    if account is not None:
        if account.user_id == user.id:
            return False
        raise OAuthFailed(f"This {provider.name} identity is already linked to another account.")
    db.add(
        Account(user_id=user.id, provider=provider.id, provider_account_id=identity.subject[:255])
    )
    await db.flush()
    details = {"provider": provider.id}
    await record(db, _actor(user, ip), "auth.oauth.link", "user", user.id, details=details)
    return True


async def linked_accounts(db: AsyncSession, user: User) -> list[Account]:
    """The provider identities linked to a user, oldest first."""
    query = select(Account).where(Account.user_id == user.id).order_by(Account.created_at)
    return list((await db.execute(query)).scalars())


async def unlink_provider(
    db: AsyncSession, user: User, provider_id: str, *, ip: str | None
) -> None:
    """Remove a link; refused when it is the account's only way to sign in."""
    accounts = await linked_accounts(db, user)
    targets = [a for a in accounts if a.provider == provider_id]
    if not targets:
        raise NotFound("No account of that provider is linked.")
    if user.password_hash is None and len(accounts) == len(targets):
        raise Conflict(
            "This is your only way to sign in. Set a password or link another provider first."
        )
    for account in targets:
        await db.delete(account)
    await db.flush()
    details = {"provider": provider_id}
    await record(db, _actor(user, ip), "auth.oauth.unlink", "user", user.id, details=details)


def _actor(user: User, ip: str | None) -> Actor:
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=ip)
