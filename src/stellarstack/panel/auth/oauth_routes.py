"""`/api/v1/auth/oauth`: sign-in and account linking with GitHub, Discord and OpenID Connect.

The authorize and callback routes are browser navigations: they answer with redirects, and a
failed callback lands on the sign-in (or security settings) page with a flash message.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from starlette.responses import RedirectResponse

from stellarstack.logs import get_logger
from stellarstack.panel.auth import oauth
from stellarstack.panel.auth.sessions import create_session, set_session_cookie
from stellarstack.panel.auth.totp import start_challenge, user_actor
from stellarstack.panel.db.enums import AuditStatus
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import DbSession, SessionUser, SettingsDep, client_ip
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.errors import Forbidden, PanelError
from stellarstack.panel.schemas import ApiModel, Envelope, ok
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.security import SECURITY_PAGE, set_challenge_cookie
from stellarstack.panel.web.urls import cookie_secure, safe_next, same_origin

__all__ = ["STATE_COOKIE", "router"]

log = get_logger(__name__)
router = APIRouter(prefix="/auth/oauth", tags=["auth"])

STATE_COOKIE = "stellar_oauth_state"
COOKIE_PATH = "/api/v1/auth/oauth"
SIGNIN_PAGE = "/auth/signin"


class ProviderOut(ApiModel):
    """A sign-in provider configured on this panel."""

    id: str
    name: str


class LinkedAccountOut(ApiModel):
    """A provider identity linked to the signed-in user."""

    provider: str
    provider_account_id: str


def _redirect_uri(settings: SettingsDep, provider_id: str) -> str:
    base = settings.effective_public_url.rstrip("/")
    return f"{base}{COOKIE_PATH}/{provider_id}/callback"


async def _to_provider(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    provider_id: str,
    *,
    intent: oauth.Intent,
    next_url: str,
    user: User | None = None,
) -> Response:
    provider = oauth.find_provider(settings, provider_id)
    url, state = await oauth.begin_authorization(
        db,
        provider,
        redirect_uri=_redirect_uri(settings, provider.id),
        intent=intent,
        next_url=safe_next(next_url),
        user_id=user.id if user else None,
    )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(oauth.STATE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path=COOKIE_PATH,
    )
    return response


@router.get("/providers", response_model=Envelope[list[ProviderOut]])
async def providers(settings: SettingsDep) -> Envelope[list[ProviderOut]]:
    """The providers people can sign in with (empty when none is configured)."""
    return ok([ProviderOut(id=p.id, name=p.name) for p in oauth.configured_providers(settings)])


@router.get("/accounts", response_model=Envelope[list[LinkedAccountOut]])
async def accounts(user: SessionUser, db: DbSession) -> Envelope[list[LinkedAccountOut]]:
    """The provider identities linked to the signed-in user."""
    linked = await oauth.linked_accounts(db, user)
    return ok([LinkedAccountOut.model_validate(a) for a in linked])


@router.delete("/accounts/{provider_id}", status_code=204)
async def unlink(provider_id: str, request: Request, user: SessionUser, db: DbSession) -> Response:
    """Unlink a provider (refused when it is the only way left to sign in)."""
    await oauth.unlink_provider(db, user, provider_id[:64], ip=client_ip(request))
    return Response(status_code=204)


@router.get("/{provider_id}/authorize")
async def authorize(
    provider_id: str,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    next_url: Annotated[str, Query(alias="next", max_length=2048)] = "",
) -> Response:
    """Send the browser to the provider to sign in."""
    return await _to_provider(
        request, db, settings, provider_id, intent="signin", next_url=next_url
    )


@router.post("/{provider_id}/link")
async def link(
    provider_id: str, request: Request, user: SessionUser, db: DbSession, settings: SettingsDep
) -> Response:
    """Send the signed-in browser to the provider to link that identity."""
    if not same_origin(request):
        raise Forbidden("This form was sent from another site, so it was not accepted.")
    return await _to_provider(
        request, db, settings, provider_id, intent="link", next_url=SECURITY_PAGE, user=user
    )


def _back(request: Request, url: str, *flashes: Flash) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    if flashes:
        set_flashes(response, request, *flashes)
    return response


@router.get("/{provider_id}/callback")
async def callback(
    provider_id: str,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    code: Annotated[str, Query(max_length=2048)] = "",
    state: Annotated[str, Query(max_length=256)] = "",
    error: Annotated[str, Query(max_length=256)] = "",
) -> Response:
    """Where the provider sends the browser back: sign in, ask for 2FA, or link."""
    intent: str = "signin"
    try:
        provider = oauth.find_provider(settings, provider_id)
        row = await oauth.claim_state(db, provider, state, request.cookies.get(STATE_COOKIE))
        intent = str(row.data.get("intent", "signin"))
        if error:
            raise oauth.OAuthFailed(f"{provider.name} did not sign you in ({error[:80]}).")
        identity = await oauth.fetch_identity(
            provider, code, row, redirect_uri=_redirect_uri(settings, provider.id)
        )
        if intent == "link":
            return await _finish_link(request, db, provider, identity, row.user_id)
        return await _finish_sign_in(request, db, settings, provider, identity, row.data)
    except PanelError as exc:
        log.info("oauth.callback_failed", provider=provider_id[:64], error=exc.detail)
        target = SECURITY_PAGE if intent == "link" else SIGNIN_PAGE
        return _back(request, target, Flash(exc.detail or "Sign-in failed.", "error"))


async def _finish_link(
    request: Request,
    db: DbSession,
    provider: oauth.Provider,
    identity: oauth.Identity,
    user_id: object,
) -> Response:
    user = await db.get(User, user_id) if user_id else None
    if user is None or user.suspended:
        raise oauth.OAuthFailed("Sign in again to link an account.")
    await oauth.link_identity(db, user, provider, identity, ip=client_ip(request))
    message = f"{provider.name} is linked: you can sign in with it."
    return _back(request, SECURITY_PAGE, Flash(message, "success"))


async def _finish_sign_in(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    provider: oauth.Provider,
    identity: oauth.Identity,
    data: dict[str, object],
) -> Response:
    signup_open = getattr(settings, "signup_policy", "closed") == "open"
    user = await oauth.sign_in_identity(db, provider, identity, signup_open=signup_open)
    actor = user_actor(user, client_ip(request))
    if user.suspended:
        await record(
            db,
            actor,
            "auth.oauth.sign_in",
            "user",
            user.id,
            status=AuditStatus.FAILURE,
            error="suspended",
        )
        raise oauth.OAuthFailed("This account is suspended.")
    next_url = safe_next(str(data.get("next") or ""))
    if user.totp_enabled:
        token = await start_challenge(db, user)
        response = _back(request, "/auth/two-factor?" + urlencode({"next": next_url}))
        set_challenge_cookie(response, request, token)
        return response
    session_token = await create_session(
        db, user, ip=client_ip(request), user_agent=request.headers.get("user-agent")
    )
    await record(
        db, actor, "auth.oauth.sign_in", "user", user.id, details={"provider": provider.id}
    )
    response = _back(request, next_url)
    set_session_cookie(response, session_token, secure=cookie_secure(request))
    return response
