"""`/api/v1/auth/2fa`: TOTP enrollment, confirmation, recovery codes, the sign-in challenge."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import Field

from stellarstack.panel.auth import totp
from stellarstack.panel.auth.ratelimit import LimiterDep
from stellarstack.panel.auth.recovery import remaining_recovery_codes
from stellarstack.panel.auth.sessions import set_session_cookie
from stellarstack.panel.deps import CurrentUser, DbSession, SessionUser, SettingsDep, client_ip
from stellarstack.panel.domain.users.schemas import UserOut
from stellarstack.panel.schemas import ApiModel, Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/auth/2fa", tags=["auth"])

CodeField = Field(
    min_length=1, max_length=64, description="A 6-digit TOTP code or a recovery code."
)


class TwoFactorStatus(ApiModel):
    """Whether two-factor is on, and how many recovery codes are left."""

    enabled: bool
    pending: bool
    recovery_codes_remaining: int


class SetupOut(ApiModel):
    """A pending enrollment: add it to an authenticator app, then confirm with a code."""

    secret: str
    otpauth_uri: str
    qr_code: str = Field(description="The otpauth URI as an SVG QR code (data: URI).")


class CodeIn(ApiModel):
    """A code from the authenticator app (or a recovery code where allowed)."""

    code: str = CodeField


class DisableIn(ApiModel):
    """The password and a code, to turn two-factor off."""

    password: str = Field(default="", max_length=1024)
    code: str = CodeField


class RecoveryCodesOut(ApiModel):
    """Recovery codes, shown only in this response."""

    recovery_codes: list[str]


class ChallengeIn(ApiModel):
    """The challenge token from sign-in and a TOTP or recovery code."""

    token: str = Field(min_length=1, max_length=256)
    code: str = CodeField


class ChallengeOut(ApiModel):
    """The signed-in user, and which factor was used."""

    user: UserOut
    method: str


@router.get("", response_model=Envelope[TwoFactorStatus])
async def status(user: CurrentUser, db: DbSession) -> Envelope[TwoFactorStatus]:
    """Two-factor state of the signed-in user."""
    remaining = await remaining_recovery_codes(db, user) if user.totp_enabled else 0
    pending = not user.totp_enabled and user.totp_secret is not None
    return ok(
        TwoFactorStatus(
            enabled=user.totp_enabled, pending=pending, recovery_codes_remaining=remaining
        )
    )


@router.post("/setup", response_model=Envelope[SetupOut])
async def setup(user: SessionUser, db: DbSession, settings: SettingsDep) -> Envelope[SetupOut]:
    """Start enrollment: a new secret, its otpauth URI and QR code."""
    enrollment = await totp.begin_enrollment(
        db, user, totp.cipher_for(settings), issuer=settings.totp_issuer
    )
    return ok(
        SetupOut(
            secret=enrollment.secret,
            otpauth_uri=enrollment.otpauth_uri,
            qr_code=enrollment.qr_data_uri,
        )
    )


@router.post("/enable", response_model=Envelope[RecoveryCodesOut])
async def enable(
    body: CodeIn, request: Request, user: SessionUser, db: DbSession, settings: SettingsDep
) -> Envelope[RecoveryCodesOut]:
    """Confirm enrollment with a code; returns the ten recovery codes (shown once)."""
    codes = await totp.confirm_enrollment(
        db, user, body.code, totp.cipher_for(settings), ip=client_ip(request)
    )
    return ok(RecoveryCodesOut(recovery_codes=codes))


@router.post("/disable", status_code=204)
async def disable(
    body: DisableIn, request: Request, user: SessionUser, db: DbSession, settings: SettingsDep
) -> Response:
    """Turn two-factor off (password and a current or recovery code)."""
    await totp.disable_two_factor(
        db, user, body.password, body.code, totp.cipher_for(settings), ip=client_ip(request)
    )
    return Response(status_code=204)


@router.post("/recovery-codes", response_model=Envelope[RecoveryCodesOut])
async def recovery_codes(
    body: CodeIn, request: Request, user: SessionUser, db: DbSession, settings: SettingsDep
) -> Envelope[RecoveryCodesOut]:
    """Replace the recovery codes (needs a valid code); the old ones stop working."""
    codes = await totp.regenerate_recovery_codes(
        db, user, body.code, totp.cipher_for(settings), ip=client_ip(request)
    )
    return ok(RecoveryCodesOut(recovery_codes=codes))


@router.post("/challenge", response_model=Envelope[ChallengeOut])
async def challenge(
    body: ChallengeIn,
    request: Request,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> Envelope[ChallengeOut]:
    """Finish a sign-in: challenge token + code → session cookie."""
    ip = client_ip(request)
    user, token, method = await totp.complete_challenge(
        db,
        body.token,
        body.code,
        totp.cipher_for(settings),
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        limiter=limiter,
    )
    secure = settings.effective_public_url.startswith("https")
    set_session_cookie(response, token, secure=secure)
    return ok(ChallengeOut(user=UserOut.model_validate(user), method=method))
