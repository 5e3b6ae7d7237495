"""`/api/v1/auth`: sign in/up/out, the session, password reset and email verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from stellarstack.panel.auth import service, signup
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
from stellarstack.panel.deps import CurrentUser, DbSession, SettingsDep, client_ip, get_database
from stellarstack.panel.domain.users.schemas import UserOut
from stellarstack.panel.schemas import ApiModel, Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/auth", tags=["auth"])

DatabaseDep = Annotated[Database, Depends(get_database)]
# Lengths are checked by the services, so a too-long value gets the same answer as a wrong one.
Email = Annotated[str, Field(max_length=4096)]
Password = Annotated[str, Field(max_length=4096)]
Token = Annotated[str, Field(min_length=1, max_length=512)]
SENT = "If an account uses this address, we have sent it a link. Check your inbox."


class SignIn(ApiModel):
    """Credentials for email + password sign-in."""

    email: Email
    password: Password


class SignInOut(ApiModel):
    """The signed-in user, or the challenge to complete with a second factor first."""

    user: UserOut | None = None
    two_factor_required: bool | None = None
    challenge_token: str | None = None


class SessionOut(ApiModel):
    """The current session's user."""

    user: UserOut


class SignUp(ApiModel):
    """A new account: email, password, optional name and invitation token."""

    email: Email
    password: Password
    name: str | None = Field(default=None, max_length=4096)
    invite: str | None = Field(default=None, max_length=512)


class SignUpOut(ApiModel):
    """The new account, or only that a verification link is on its way."""

    user: UserOut | None
    verification_required: bool
    message: str


class EmailOnly(ApiModel):
    """An address to send a link to."""

    email: Email


class ResetPassword(ApiModel):
    """A reset token from the email and the new password."""

    token: Token
    password: Password


class VerifyEmail(ApiModel):
    """A verification token from the email."""

    token: Token


class Message(ApiModel):
    """A sentence for the person who asked."""

    message: str


def _secure(settings: SettingsDep) -> bool:
    return settings.effective_public_url.startswith("https")


@router.post("/sign-in", response_model=Envelope[SignInOut], response_model_exclude_none=True)
async def sign_in(
    body: SignIn,
    request: Request,
    response: Response,
    db: DbSession,
    database: DatabaseDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> Envelope[SignInOut]:
    """Sign in with email and password; sets the session cookie (or asks for a second factor)."""
    result = await service.sign_in(
        db,
        body.email,
        body.password,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        limiter=limiter,
        database=database,
        require_verified=settings.require_email_verification,
    )
    if result.challenge_token is not None:
        return ok(SignInOut(two_factor_required=True, challenge_token=result.challenge_token))
    assert result.session_token is not None
    set_session_cookie(response, result.session_token, secure=_secure(settings))
    return ok(SignInOut(user=UserOut.model_validate(result.user)))


@router.post("/sign-up", response_model=Envelope[SignUpOut], status_code=201)
async def sign_up(
    body: SignUp,
    request: Request,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
) -> Envelope[SignUpOut]:
    """Create an account (as the sign-up policy allows); invitees are signed in at once."""
    ip = client_ip(request)
    result = await signup.sign_up(
        db,
        settings,
        email=body.email,
        password=body.password,
        name=body.name,
        invite=body.invite,
        ip=ip,
        limiter=limiter,
        mailer=mailer,
    )
    if result.verification_required:
        message = "Check your inbox: open the link we sent to confirm your address."
        return ok(SignUpOut(user=None, verification_required=True, message=message))
    assert result.user is not None
    token = await create_session(
        db, result.user, ip=ip, user_agent=request.headers.get("user-agent")
    )
    set_session_cookie(response, token, secure=_secure(settings))
    user = UserOut.model_validate(result.user)
    return ok(SignUpOut(user=user, verification_required=False, message="Welcome!"))


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


@router.post("/forgot-password", response_model=Envelope[Message], status_code=202)
async def forgot_password(
    body: EmailOnly,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
) -> Envelope[Message]:
    """Email a password reset link; the same answer whether or not the account exists."""
    await service.request_password_reset(
        db,
        body.email,
        ip=client_ip(request),
        limiter=limiter,
        mailer=mailer,
        public_url=settings.effective_public_url,
    )
    return ok(Message(message=SENT))


@router.post("/reset-password", response_model=Envelope[Message])
async def reset_password(body: ResetPassword, request: Request, db: DbSession) -> Envelope[Message]:
    """Choose a new password with the emailed token; every session of the account ends."""
    await service.reset_password(db, body.token, body.password, ip=client_ip(request))
    return ok(Message(message="Your password has been changed. Sign in with the new one."))


@router.post("/verify-email", response_model=Envelope[SessionOut])
async def verify_email(body: VerifyEmail, request: Request, db: DbSession) -> Envelope[SessionOut]:
    """Confirm an address with the emailed token (a new address replaces the old one)."""
    user = await signup.verify_email(db, body.token, ip=client_ip(request))
    return ok(SessionOut(user=UserOut.model_validate(user)))


@router.post("/verify-email/resend", response_model=Envelope[Message], status_code=202)
async def resend_verification(
    body: EmailOnly,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
    mailer: MailerDep,
) -> Envelope[Message]:
    """Send a new verification link; the same answer whether or not the account exists."""
    await signup.resend_verification(
        db,
        body.email,
        ip=client_ip(request),
        limiter=limiter,
        mailer=mailer,
        public_url=settings.effective_public_url,
    )
    return ok(Message(message=SENT))
