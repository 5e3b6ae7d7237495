"""Security pages: the 2FA challenge at sign-in, 2FA settings, OAuth sign-in and linking.

Sign-in (password or OAuth) that needs a second factor calls `set_challenge_cookie` and
redirects to `/auth/two-factor?next=…`; the challenge token travels in an HTTP-only cookie
scoped to that page, never in a URL.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from stellarstack.panel.auth import oauth, totp
from stellarstack.panel.auth.ratelimit import rate_limiter
from stellarstack.panel.auth.recovery import remaining_recovery_codes
from stellarstack.panel.auth.sessions import set_session_cookie
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, DbSession, SettingsDep, client_ip
from stellarstack.panel.errors import PanelError, Unauthorized
from stellarstack.panel.web.account import SETTINGS_TABS, SettingsTab, render_settings
from stellarstack.panel.web.error_pages import error_page
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import cookie_secure, redirect, safe_next, same_origin

__all__ = ["CHALLENGE_COOKIE", "SECURITY_PAGE", "router", "set_challenge_cookie"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CHALLENGE_COOKIE = "stellar_2fa"
CHALLENGE_PAGE = "/auth/two-factor"
SECURITY_PAGE = "/settings/security"
CROSS_SITE = "This form was sent from another site, so it was not accepted."
SETTINGS_TABS.append(SettingsTab(SECURITY_PAGE, "Security", "shield"))

CodeField = Annotated[str, Form(max_length=64)]
NextQuery = Annotated[str, Query(alias="next", max_length=4096)]
NextField = Annotated[str, Form(alias="next", max_length=4096)]


def set_challenge_cookie(response: Response, request: Request, token: str) -> None:
    """Hand a 2FA challenge token to the browser for the challenge page."""
    response.set_cookie(
        CHALLENGE_COOKIE,
        token,
        max_age=int(totp.CHALLENGE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path=CHALLENGE_PAGE,
    )


def _challenge_form(
    request: Request, next_url: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    return render(
        request,
        "auth/two_factor.html",
        user=None,
        next_url=safe_next(next_url, default=""),
        error=error,
        status_code=status_code,
    )


def _back_to_signin(request: Request, message: str) -> Response:
    response = redirect(request, "/auth/signin")
    response.delete_cookie(CHALLENGE_COOKIE, path=CHALLENGE_PAGE)
    set_flashes(response, request, Flash(message, "error"))
    return response


@router.get(CHALLENGE_PAGE)
async def challenge_page(request: Request, next_url: NextQuery = "") -> Response:
    """Ask for the code from the authenticator app (after the password was accepted)."""
    if not request.cookies.get(CHALLENGE_COOKIE):
        return redirect(request, "/auth/signin")
    return _challenge_form(request, next_url)


@router.post(CHALLENGE_PAGE)
async def challenge_submit(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    code: CodeField = "",
    next_url: NextField = "",
) -> Response:
    """Check the code; open the session and go on, or ask again."""
    if not same_origin(request):
        return error_page(request, 403, CROSS_SITE)
    token = request.cookies.get(CHALLENGE_COOKIE, "")
    try:
        limiter = rate_limiter(request)
        _, session_token, _ = await totp.complete_challenge(
            db,
            token,
            code,
            totp.cipher_for(settings),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            limiter=limiter,
        )
    except Unauthorized as exc:
        if exc.detail == totp.CHALLENGE_GONE:
            return _back_to_signin(request, exc.detail)
        return _challenge_form(request, next_url, error=exc.detail, status_code=401)
    except PanelError as exc:
        return _challenge_form(request, next_url, error=exc.detail, status_code=exc.status)
    response = redirect(request, safe_next(next_url))
    response.delete_cookie(CHALLENGE_COOKIE, path=CHALLENGE_PAGE)
    set_session_cookie(response, session_token, secure=cookie_secure(request))
    return response


async def _security_page(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    user: User,
    *,
    recovery_codes: list[str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    cipher = totp.cipher_for(settings)
    linked = {a.provider for a in await oauth.linked_accounts(db, user)}
    context: dict[str, Any] = {
        "enrollment": totp.pending_enrollment(user, cipher, issuer=settings.totp_issuer),
        "remaining": await remaining_recovery_codes(db, user) if user.totp_enabled else 0,
        "recovery_codes": recovery_codes,
        "providers": [(p, p.id in linked) for p in oauth.configured_providers(settings)],
        "has_password": user.password_hash is not None,
        "error": error,
    }
    return render_settings(
        request, "settings/security.html", user=user, status_code=status_code, **context
    )


@router.get(SECURITY_PAGE)
async def security_page(
    request: Request, user: CurrentUser, db: DbSession, settings: SettingsDep
) -> Response:
    """Two-factor authentication and linked sign-in providers."""
    return await _security_page(request, db, settings, user)


SecurityAction = Literal["setup", "enable", "recovery-codes", "disable", "unlink"]


@router.post(SECURITY_PAGE)
async def security_submit(
    request: Request,
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    action: Annotated[SecurityAction, Form()],
    code: CodeField = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    provider: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """One form endpoint for the page (so the address stays /settings/security)."""
    if not same_origin(request):
        return error_page(request, 403, CROSS_SITE)
    cipher, ip = totp.cipher_for(settings), client_ip(request)
    codes: list[str] | None = None
    try:
        if action == "setup":
            await totp.begin_enrollment(db, user, cipher, issuer=settings.totp_issuer)
        elif action == "enable":
            codes = await totp.confirm_enrollment(db, user, code, cipher, ip=ip)
        elif action == "recovery-codes":
            codes = await totp.regenerate_recovery_codes(db, user, code, cipher, ip=ip)
        elif action == "disable":
            await totp.disable_two_factor(db, user, password, code, cipher, ip=ip)
        else:
            await oauth.unlink_provider(db, user, provider, ip=ip)
    except PanelError as exc:
        return await _security_page(
            request, db, settings, user, error=exc.detail, status_code=exc.status
        )
    if codes is not None:  # shown once, so rendered rather than redirected to
        return await _security_page(request, db, settings, user, recovery_codes=codes)
    response = redirect(request, SECURITY_PAGE)
    if action in DONE:
        set_flashes(response, request, Flash(DONE[action], "success"))
    return response


DONE = {
    "disable": "Two-factor authentication is off.",
    "unlink": "The provider is unlinked; it no longer signs you in.",
}
