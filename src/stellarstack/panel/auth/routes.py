"""`/api/v1/auth`: sign in, sign out, current session."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from stellarstack.panel.auth import service
from stellarstack.panel.auth.sessions import (
    SESSION_COOKIE,
    clear_session_cookie,
    revoke_session,
    set_session_cookie,
)
from stellarstack.panel.deps import CurrentUser, DbSession, SettingsDep, client_ip
from stellarstack.panel.domain.users.schemas import UserOut
from stellarstack.panel.schemas import ApiModel, Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])


class SignIn(ApiModel):
    """Credentials for email + password sign-in."""

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(ApiModel):
    """The current session's user."""

    user: UserOut


@router.post("/sign-in", response_model=Envelope[SessionOut])
async def sign_in(
    body: SignIn, request: Request, response: Response, db: DbSession, settings: SettingsDep
) -> Envelope[SessionOut]:
    """Sign in with email and password; sets the session cookie."""
    user, token = await service.sign_in(
        db,
        body.email,
        body.password,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    set_session_cookie(response, token, secure=settings.effective_public_url.startswith("https"))
    return ok(SessionOut(user=UserOut.model_validate(user)))


@router.post("/sign-out", status_code=204)
async def sign_out(request: Request, db: DbSession) -> Response:
    """End the current session."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await revoke_session(db, token)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@router.get("/session", response_model=Envelope[SessionOut])
async def get_session(user: CurrentUser) -> Envelope[SessionOut]:
    """The signed-in user of this session."""
    return ok(SessionOut(user=UserOut.model_validate(user)))
