"""Sign-in, sign-out and sign-up pages (the browser side of `panel.auth`).

Cross-site posts and missing CSRF tokens are refused before these handlers run, by
`auth.csrf.CsrfMiddleware`; forms carry the token as a hidden `csrf_token` field.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from stellarstack.panel.auth import oauth, service, signup
from stellarstack.panel.auth.mailer import MailerDep
from stellarstack.panel.auth.ratelimit import LimiterDep
from stellarstack.panel.auth.sessions import (
    SESSION_COOKIE,
    clear_session_cookie,
    create_session,
    revoke_session,
    set_session_cookie,
)
from stellarstack.panel.db.session import Database
from stellarstack.panel.deps import DbSession, OptionalUser, SettingsDep, client_ip, get_database
from stellarstack.panel.errors import PanelError, Unauthorized, ValidationFailed
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import cookie_secure, redirect, safe_next

__all__ = ["TWO_FACTOR_PAGE", "router"]

router = APIRouter(prefix="/auth", route_class=PageRoute, include_in_schema=False)

INVALID_CREDENTIALS = service.INVALID_CREDENTIALS
TWO_FACTOR_PAGE = "/auth/two-factor"
MAX_EMAIL = 320

NextQuery = Annotated[str, Query(alias="next", max_length=4096)]
NextField = Annotated[str, Form(alias="next")]
# No max_length: an oversized value gets the same answer as a wrong one (the services cap
# lengths, and the body limit caps the request).
TextField = Annotated[str, Form()]
DatabaseDep = Annotated[Database, Depends(get_database)]


def _signin_form(
    request: Request,
    *,
    email: str = "",
    next_url: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "auth/signin.html",
        user=None,
        email=email[:MAX_EMAIL],
        next_url=safe_next(next_url, default=""),
        error=error,
        oauth_providers=oauth.configured_providers(request.app.state.settings),
        status_code=status_code,
    )


@router.get("/signin")
async def signin_page(request: Request, user: OptionalUser, next_url: NextQuery = "") -> Response:
    """The sign-in form (signed-in visitors go straight on)."""
    if user is not None:
        return redirect(request, safe_next(next_url))
    return _signin_form(request, next_url=next_url)


def _to_two_factor(request: Request, challenge: str, next_url: str) -> Response:
    # The 2FA page (web/security.py) takes the challenge from an HTTP-only cookie.
    from stellarstack.panel.web import security

    target = safe_next(next_url, default="")
    response = redirect(
        request, TWO_FACTOR_PAGE + (f"?{urlencode({'next': target})}" if target else "")
    )
    security.set_challenge_cookie(response, request, challenge)
    return response


@router.post("/signin")
async def signin_submit(
    request: Request,
    db: DbSession,
    database: DatabaseDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    email: TextField = "",
    password: TextField = "",
    next_url: NextField = "",
) -> Response:
    """Check the credentials; open a session and go on, or show the form again."""
    try:
        if not email.strip() or not password:
            raise Unauthorized(INVALID_CREDENTIALS)
        result = await service.sign_in(
            db,
            email,
            password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            limiter=limiter,
            database=database,
            require_verified=settings.require_email_verification,
        )
    except Unauthorized:
        return _signin_form(
            request, email=email, next_url=next_url, error=INVALID_CREDENTIALS, status_code=401
        )
    except PanelError as exc:
        response = _signin_form(
            request,
            email=email,
            next_url=next_url,
            error=exc.detail or INVALID_CREDENTIALS,
            status_code=exc.status,
        )
        response.headers.update(exc.headers)
        return response
    if result.challenge_token is not None:
        return _to_two_factor(request, result.challenge_token, next_url)
    assert result.session_token is not None
    response = redirect(request, safe_next(next_url))
    set_session_cookie(response, result.session_token, secure=cookie_secure(request))
    return response


@router.post("/signout")
async def signout(request: Request, db: DbSession) -> Response:
    """End this browser's session."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await revoke_session(db, token)
    response = redirect(request, "/auth/signin")
    clear_session_cookie(response)
    set_flashes(response, request, Flash("You have been signed out.", "success"))
    return response


def _signup_form(
    request: Request,
    settings: SettingsDep,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    sent_to: str | None = None,
    status_code: int = 200,
) -> Response:
    values = values or {}
    return render(
        request,
        "auth/signup.html",
        user=None,
        policy=settings.signup_policy,
        invite=values.get("invite", "")[:512],
        values={k: v[:MAX_EMAIL] for k, v in values.items() if k in ("email", "name")},
        errors=errors or {},
        error=error,
        sent_to=sent_to,
        status_code=status_code,
    )


@router.get("/signup")
async def signup_page(
    request: Request,
    user: OptionalUser,
    settings: SettingsDep,
    invite: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """The sign-up form, or why sign-up is not open here."""
    if user is not None:
        return redirect(request, "/dashboard")
    return _signup_form(request, settings, values={"invite": invite})


@router.post("/signup")
async def signup_submit(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
    email: TextField = "",
    password: TextField = "",
    name: TextField = "",
    invite: TextField = "",
) -> Response:
    """Create the account; show "check your inbox" or sign the invitee in."""
    values = {"email": email, "name": name, "invite": invite}
    ip = client_ip(request)
    try:
        result = await signup.sign_up(
            db,
            settings,
            email=email,
            password=password,
            name=name or None,
            invite=invite or None,
            ip=ip,
            limiter=limiter,
            mailer=mailer,
        )
    except ValidationFailed as exc:
        await db.rollback()  # the page answers normally, so undo what the service began
        errors = {e.field: e.message for e in exc.errors}
        return _signup_form(request, settings, values=values, errors=errors, status_code=422)
    except PanelError as exc:
        await db.rollback()
        return _signup_form(
            request, settings, values=values, error=exc.detail, status_code=exc.status
        )
    if result.verification_required or result.user is None:
        return _signup_form(request, settings, sent_to=service.normalize_email(email))
    token = await create_session(
        db, result.user, ip=ip, user_agent=request.headers.get("user-agent")
    )
    response = redirect(request, "/dashboard")
    set_session_cookie(response, token, secure=cookie_secure(request))
    set_flashes(response, request, Flash("Welcome to StellarStack!", "success"))
    return response
