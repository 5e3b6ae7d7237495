"""Sign-in, sign-out and sign-up pages (the browser side of `panel.auth`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from stellarstack.panel.auth.service import sign_in
from stellarstack.panel.auth.sessions import (
    SESSION_COOKIE,
    clear_session_cookie,
    revoke_session,
    set_session_cookie,
)
from stellarstack.panel.deps import DbSession, OptionalUser, client_ip
from stellarstack.panel.errors import PanelError, Unauthorized
from stellarstack.panel.web.error_pages import error_page
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import cookie_secure, redirect, safe_next, same_origin

__all__ = ["router"]

router = APIRouter(prefix="/auth", route_class=PageRoute, include_in_schema=False)

INVALID_CREDENTIALS = "The email or password is incorrect."
CROSS_SITE = "This form was sent from another site, so it was not accepted."
MAX_EMAIL = 320
MAX_PASSWORD = 1024

NextQuery = Annotated[str, Query(alias="next", max_length=4096)]
NextField = Annotated[str, Form(alias="next")]


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
        status_code=status_code,
    )


@router.get("/signin")
async def signin_page(request: Request, user: OptionalUser, next_url: NextQuery = "") -> Response:
    """The sign-in form (signed-in visitors go straight on)."""
    if user is not None:
        return redirect(request, safe_next(next_url))
    return _signin_form(request, next_url=next_url)


@router.post("/signin")
async def signin_submit(
    request: Request,
    db: DbSession,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next_url: NextField = "",
) -> Response:
    """Check the credentials; open a session and go on, or show the form again."""
    if not same_origin(request):
        return error_page(request, 403, CROSS_SITE)
    try:
        if (
            not email.strip()
            or not password
            or len(email) > MAX_EMAIL
            or (len(password) > MAX_PASSWORD)
        ):
            raise Unauthorized(INVALID_CREDENTIALS)
        _, token = await sign_in(
            db,
            email,
            password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except Unauthorized:
        return _signin_form(
            request, email=email, next_url=next_url, error=INVALID_CREDENTIALS, status_code=401
        )
    except PanelError as exc:
        return _signin_form(
            request,
            email=email,
            next_url=next_url,
            error=exc.detail or INVALID_CREDENTIALS,
            status_code=exc.status,
        )
    response = redirect(request, safe_next(next_url))
    set_session_cookie(response, token, secure=cookie_secure(request))
    return response


@router.post("/signout")
async def signout(request: Request, db: DbSession) -> Response:
    """End this browser's session."""
    if not same_origin(request):
        return error_page(request, 403, CROSS_SITE)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await revoke_session(db, token)
    response = redirect(request, "/auth/signin")
    clear_session_cookie(response)
    set_flashes(response, request, Flash("You have been signed out.", "success"))
    return response


@router.get("/signup")
async def signup_page(request: Request, user: OptionalUser) -> Response:
    """Where self-service sign-up will live."""
    return render(request, "auth/signup.html", user=user)
