"""Account pages: forgotten password, reset, email verification, and the settings hub.

The settings hub is a row of tabs over `settings.html`. `SETTINGS_TABS` is the list of tabs:
another area adds its page by appending one `SettingsTab` and rendering with
`render_settings(request, "settings/<page>.html", user=user)`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from stellarstack.panel.auth import service as auth_service
from stellarstack.panel.auth import signup
from stellarstack.panel.auth.mailer import MailerDep
from stellarstack.panel.auth.ratelimit import LimiterDep
from stellarstack.panel.auth.sessions import list_sessions
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, DbSession, OptionalUser, SettingsDep, client_ip
from stellarstack.panel.domain.users import service as users
from stellarstack.panel.errors import PanelError, ValidationFailed
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import redirect

__all__ = ["SETTINGS_TABS", "SettingsTab", "render_settings", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TextField = Annotated[str, Form()]  # lengths are checked by the services
TokenQuery = Annotated[str, Query(max_length=512)]
SENT = "If an account uses this address, we have sent it a link. Check your inbox."


@dataclass(frozen=True, slots=True)
class SettingsTab:
    """One tab of the settings hub."""

    href: str
    label: str
    icon: str


SETTINGS_TABS: list[SettingsTab] = [
    SettingsTab("/settings", "Profile", "users"),
    SettingsTab("/settings/password", "Password", "lock"),
    SettingsTab("/settings/sessions", "Sessions", "activity"),
]


def render_settings(
    request: Request, name: str, *, user: User, status_code: int = 200, **context: Any
) -> Response:
    """Render one settings page inside the hub, its tab marked current."""
    return render(
        request,
        name,
        user=user,
        settings_tabs=SETTINGS_TABS,
        current_tab=request.url.path.rstrip("/") or "/settings",
        status_code=status_code,
        **context,
    )


# --- signed out: forgotten password, reset, verification -------------------------------------


@router.get("/auth/forgot")
async def forgot_page(request: Request, user: OptionalUser) -> Response:
    """Ask for a password reset link."""
    return render(request, "auth/forgot.html", user=None, sent=False, error=None)


@router.post("/auth/forgot")
async def forgot_submit(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
    email: TextField = "",
) -> Response:
    """Send the link if the account exists; say the same thing either way."""
    try:
        await auth_service.request_password_reset(
            db,
            email,
            ip=client_ip(request),
            limiter=limiter,
            mailer=mailer,
            public_url=settings.effective_public_url,
        )
    except PanelError as exc:
        return render(
            request,
            "auth/forgot.html",
            user=None,
            sent=False,
            error=exc.detail,
            status_code=exc.status,
        )
    return render(request, "auth/forgot.html", user=None, sent=True, error=None)


@router.get("/auth/reset")
async def reset_page(request: Request, token: TokenQuery = "") -> Response:
    """Choose a new password (the token comes from the emailed link)."""
    return render(request, "auth/reset.html", user=None, token=token, error=None)


@router.post("/auth/reset")
async def reset_submit(
    request: Request, db: DbSession, token: TextField = "", password: TextField = ""
) -> Response:
    """Set the new password, end every session, and send the person to sign in."""
    try:
        await auth_service.reset_password(db, token, password, ip=client_ip(request))
    except PanelError as exc:
        await db.rollback()
        return render(
            request,
            "auth/reset.html",
            user=None,
            token=token[:512],
            error=exc.detail,
            status_code=exc.status,
        )
    response = redirect(request, "/auth/signin")
    set_flashes(response, request, Flash("Your password has been changed. Sign in.", "success"))
    return response


@router.get("/auth/verify")
async def verify_page(request: Request, token: TokenQuery = "") -> Response:
    """The landing page of a verification link: one button confirms (links must not act)."""
    return render(request, "auth/verify.html", user=None, token=token, error=None, sent=False)


@router.post("/auth/verify")
async def verify_submit(request: Request, db: DbSession, token: TextField = "") -> Response:
    """Confirm the address, then go to sign-in."""
    try:
        await signup.verify_email(db, token, ip=client_ip(request))
    except PanelError as exc:
        await db.rollback()
        return render(
            request,
            "auth/verify.html",
            user=None,
            token="",
            error=exc.detail,
            sent=False,
            status_code=exc.status,
        )
    response = redirect(request, "/auth/signin")
    set_flashes(response, request, Flash("Your email address is confirmed.", "success"))
    return response


@router.post("/auth/verify/resend")
async def verify_resend(
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
    email: TextField = "",
) -> Response:
    """Send a new verification link (the same answer for any address)."""
    error = None
    try:
        await signup.resend_verification(
            db,
            email,
            ip=client_ip(request),
            limiter=limiter,
            mailer=mailer,
            public_url=settings.effective_public_url,
        )
    except PanelError as exc:
        error = exc.detail
    return render(request, "auth/verify.html", user=None, token="", error=error, sent=error is None)


# --- signed in: the settings hub --------------------------------------------------------------


@router.get("/settings")
async def profile_page(request: Request, user: CurrentUser) -> Response:
    """Profile (name, email) and appearance."""
    return render_settings(request, "settings/profile.html", user=user, errors={})


@router.post("/settings/profile")
async def profile_submit(
    request: Request,
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    mailer: MailerDep,
    name: TextField = "",
    email: TextField = "",
    current_password: TextField = "",
) -> Response:
    """Save the name; send a verification link to a new address."""
    try:
        change = await users.update_profile(
            db,
            user,
            name=name,
            email=email or None,
            current_password=current_password,
            ip=client_ip(request),
            mailer=mailer,
            public_url=settings.effective_public_url,
        )
    except ValidationFailed as exc:
        await db.rollback()
        await db.refresh(user)
        errors = {e.field: e.message for e in exc.errors}
        return render_settings(
            request, "settings/profile.html", user=user, errors=errors, status_code=422
        )
    flashes = [Flash("Your profile has been saved.", "success")]
    if change.pending_email:
        flashes.append(
            Flash(f"Open the link we sent to {change.pending_email} to switch to it.", "info")
        )
    response = redirect(request, "/settings")
    set_flashes(response, request, *flashes)
    return response


@router.get("/settings/password")
async def password_page(request: Request, user: CurrentUser) -> Response:
    """Change the password."""
    return render_settings(request, "settings/password.html", user=user, errors={})


def _session_id(request: Request) -> uuid.UUID | None:
    return getattr(getattr(request.state, "session", None), "id", None)


@router.post("/settings/password")
async def password_submit(
    request: Request,
    user: CurrentUser,
    db: DbSession,
    current_password: TextField = "",
    new_password: TextField = "",
) -> Response:
    """Set the new password; every other browser is signed out."""
    try:
        ended = await users.change_password(
            db,
            user,
            current_password,
            new_password,
            keep_session=_session_id(request),
            ip=client_ip(request),
        )
    except ValidationFailed as exc:
        await db.rollback()
        await db.refresh(user)
        errors = {e.field: e.message for e in exc.errors}
        return render_settings(
            request, "settings/password.html", user=user, errors=errors, status_code=422
        )
    note = f" {ended} other session(s) were signed out." if ended else ""
    response = redirect(request, "/settings/password")
    set_flashes(response, request, Flash("Your password has been changed." + note, "success"))
    return response


@router.get("/settings/sessions")
async def sessions_page(request: Request, user: CurrentUser, db: DbSession) -> Response:
    """The browsers signed in to this account."""
    sessions = await list_sessions(db, user.id)
    return render_settings(
        request,
        "settings/sessions.html",
        user=user,
        sessions=sessions,
        current_id=_session_id(request),
    )


@router.post("/settings/sessions/{session_id}/revoke")
async def session_revoke(
    request: Request, user: CurrentUser, db: DbSession, session_id: uuid.UUID
) -> Response:
    """Sign one browser out."""
    await users.end_session(db, user, session_id, ip=client_ip(request))
    if session_id == _session_id(request):
        return redirect(request, "/auth/signin")
    response = redirect(request, "/settings/sessions")
    set_flashes(response, request, Flash("That browser has been signed out.", "success"))
    return response


@router.post("/settings/sessions/revoke-others")
async def sessions_revoke_others(request: Request, user: CurrentUser, db: DbSession) -> Response:
    """Sign out every other browser."""
    ended = await users.end_other_sessions(
        db, user, keep=_session_id(request), ip=client_ip(request)
    )
    response = redirect(request, "/settings/sessions")
    set_flashes(response, request, Flash(f"Signed out {ended} other session(s).", "success"))
    return response
