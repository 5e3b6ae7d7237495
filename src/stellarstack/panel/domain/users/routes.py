"""`/api/v1/users/me`: the signed-in user's profile, password and sessions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from stellarstack.panel.auth.mailer import MailerDep
from stellarstack.panel.auth.sessions import list_sessions
from stellarstack.panel.deps import CurrentUser, DbSession, SessionUser, SettingsDep, client_ip
from stellarstack.panel.domain.users import service
from stellarstack.panel.domain.users.schemas import (
    PasswordChange,
    ProfileUpdate,
    SessionInfo,
    UserOut,
)
from stellarstack.panel.errors import Forbidden
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


def current_session_id(request: Request) -> uuid.UUID:
    """The id of this request's browser session; 403 for API keys (they cannot manage these)."""
    session = getattr(request.state, "session", None)
    if getattr(request.state, "api_key_id", None) is not None or session is None:
        raise Forbidden("This needs a signed-in session; API keys cannot manage credentials.")
    session_id: uuid.UUID = session.id
    return session_id


@router.get("/me", response_model=Envelope[UserOut])
async def get_me(user: CurrentUser) -> Envelope[UserOut]:
    """Retrieve the signed-in user."""
    return ok(UserOut.model_validate(user))


@router.patch("/me", response_model=Envelope[UserOut])
async def update_me(
    body: ProfileUpdate,
    request: Request,
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    mailer: MailerDep,
) -> Envelope[UserOut]:
    """Update the name; a new email takes effect once the link sent to it is opened."""
    if body.email is not None:
        current_session_id(request)
    change = await service.update_profile(
        db,
        user,
        name=body.name,
        email=body.email,
        current_password=body.current_password,
        ip=client_ip(request),
        mailer=mailer,
        public_url=settings.effective_public_url,
    )
    meta: dict[str, object] | None = (
        {"pendingEmail": change.pending_email} if change.pending_email else None
    )
    return ok(UserOut.model_validate(change.user), meta=meta)


@router.post("/me/password", status_code=204)
async def change_password(
    body: PasswordChange, request: Request, user: SessionUser, db: DbSession
) -> Response:
    """Change the password; every other session of the account ends."""
    await service.change_password(
        db,
        user,
        body.current_password,
        body.new_password,
        keep_session=current_session_id(request),
        ip=client_ip(request),
    )
    return Response(status_code=204)


@router.get("/me/sessions", response_model=Envelope[list[SessionInfo]])
async def get_sessions(
    request: Request, user: CurrentUser, db: DbSession
) -> Envelope[list[SessionInfo]]:
    """The browsers signed in to this account, the current one marked."""
    current = current_session_id(request)
    sessions = await list_sessions(db, user.id)
    return ok(
        [
            SessionInfo.model_validate(s).model_copy(update={"current": s.id == current})
            for s in sessions
        ]
    )


@router.delete("/me/sessions/{session_id}", status_code=204)
async def revoke_session(
    session_id: uuid.UUID, request: Request, user: CurrentUser, db: DbSession
) -> Response:
    """Sign one browser out (the current one included)."""
    current_session_id(request)
    await service.end_session(db, user, session_id, ip=client_ip(request))
    return Response(status_code=204)


@router.delete("/me/sessions", status_code=204)
async def revoke_other_sessions(request: Request, user: CurrentUser, db: DbSession) -> Response:
    """Sign every other browser out; this one stays signed in."""
    await service.end_other_sessions(
        db, user, keep=current_session_id(request), ip=client_ip(request)
    )
    return Response(status_code=204)
