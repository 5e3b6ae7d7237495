"""Time-based one-time passwords: enrollment, verification (single use), the sign-in challenge.

A TOTP code is accepted once: `users.totp_last_used_step` holds the last accepted 30-second
step, and a code whose step is not newer is refused, also across the ±1 step window. The
secret is encrypted at rest with a key derived from the panel's secret key.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from stellarstack.logs import get_logger
from stellarstack.panel.auth.passwords import verify_password
from stellarstack.panel.auth.ratelimit import RateLimiter
from stellarstack.panel.auth.recovery import (
    consume_recovery_code,
    delete_recovery_codes,
    issue_recovery_codes,
)
from stellarstack.panel.auth.sessions import create_session, hash_token
from stellarstack.panel.db.enums import ActorType, AuditStatus, TokenPurpose
from stellarstack.panel.db.models import OneTimeToken, User
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.errors import Conflict, FieldError, Unauthorized, ValidationFailed
from stellarstack.settings import PanelSettings

__all__ = [
    "CHALLENGE_LIFETIME",
    "MAX_CHALLENGE_ATTEMPTS",
    "Enrollment",
    "SecretCipher",
    "accept_totp",
    "begin_enrollment",
    "cipher_for",
    "complete_challenge",
    "confirm_enrollment",
    "disable_two_factor",
    "pending_enrollment",
    "regenerate_recovery_codes",
    "start_challenge",
    "user_actor",
    "verify_second_factor",
]

log = get_logger(__name__)

CHALLENGE_LIFETIME = timedelta(minutes=5)
MAX_CHALLENGE_ATTEMPTS = 5
# Steps either side of now that are accepted, for clocks that drift a little.
VALID_WINDOW = 1
_CODE = re.compile(r"^\d{6}$")
CHALLENGE_GONE = "This sign-in has expired or was already used. Sign in again."
WRONG_CODE = "That code is not valid. Enter the current code from your app, or a recovery code."
SecondFactor = Literal["totp", "recovery"]


class SecretCipher:
    """Encrypts TOTP secrets at rest (Fernet, key derived from the panel's secret key)."""

    def __init__(self, panel_secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"stellarstack.totp-secret"
        ).derive(panel_secret.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, secret: str) -> str:
        """The stored form of a secret."""
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The secret behind a stored value; Conflict when the panel's key has changed."""
        try:
            return self._fernet.decrypt(stored.encode()).decode()
        except InvalidToken:
            log.error("totp.secret_undecryptable")
            raise Conflict(
                "The two-factor secret cannot be read (the panel's secret key changed). "
                "Ask an administrator to reset two-factor authentication on your account."
            ) from None


def cipher_for(settings: PanelSettings) -> SecretCipher:
    """The cipher for this panel (creating the data directory's secret key if none is set)."""
    if not settings.secret_key:
        # Imported here: bootstrap imports the sign-in service, which imports this module.
        from stellarstack.panel.bootstrap import ensure_data_dir

        ensure_data_dir(settings)
    assert settings.secret_key
    return SecretCipher(settings.secret_key)


def user_actor(user: User, ip: str | None) -> Actor:
    """The audit actor for a user acting on their own account."""
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=ip)


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What an authenticator app needs: the secret, its otpauth URI and that URI as a QR code."""

    secret: str
    otpauth_uri: str
    qr_data_uri: str


def _enrollment(user: User, secret: str, issuer: str) -> Enrollment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")
    return Enrollment(secret=secret, otpauth_uri=uri, qr_data_uri=qr)


async def begin_enrollment(
    db: AsyncSession, user: User, cipher: SecretCipher, *, issuer: str
) -> Enrollment:
    """Create a pending secret for a user (replacing any earlier pending one)."""
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already on. Turn it off to set up again.")
    secret = pyotp.random_base32()
    user.totp_secret = cipher.encrypt(secret)
    user.totp_last_used_step = None
    await db.flush()
    log.info("totp.enrollment_started", user_id=str(user.id))
    return _enrollment(user, secret, issuer)


def pending_enrollment(user: User, cipher: SecretCipher, *, issuer: str) -> Enrollment | None:
    """The enrollment started but not confirmed yet, to show its QR code again."""
    if user.totp_enabled or not user.totp_secret:
        return None
    return _enrollment(user, cipher.decrypt(user.totp_secret), issuer)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def accept_totp(
    db: AsyncSession, user: User, secret: str, code: str, *, now: float | None = None
) -> bool:
    """Accept a TOTP code once: refused when its step is not newer than the last one used.

    The step is claimed with one conditional UPDATE, so two requests racing with the same
    code cannot both succeed.
    """
    code = re.sub(r"\s", "", code)
    if not _CODE.match(code):
        return False
    step = _matching_step(secret, code, time.time() if now is None else now)
    if step is None:
        return False
    result = await db.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_used_step.is_(None), User.totp_last_used_step < step),
        )
        .values(totp_last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        log.info("totp.code_reused", user_id=str(user.id), step=step)
        return False
    set_committed_value(user, "totp_last_used_step", step)
    return True


async def verify_second_factor(
    db: AsyncSession, user: User, code: str, cipher: SecretCipher
) -> SecondFactor | None:
    """Check a TOTP code or a recovery code of an enabled user; each is accepted once."""
    if not user.totp_enabled or not user.totp_secret or len(code) > 64:
        return None
    if await accept_totp(db, user, cipher.decrypt(user.totp_secret), code):
        return "totp"
    if await consume_recovery_code(db, user, code):
        return "recovery"
    return None


def _invalid_code(message: str = WRONG_CODE) -> ValidationFailed:
    return ValidationFailed([FieldError("code", message)], detail=message)


async def confirm_enrollment(
    db: AsyncSession, user: User, code: str, cipher: SecretCipher, *, ip: str | None
) -> list[str]:
    """Turn two-factor on with a code from the new device; return the ten recovery codes."""
    if user.totp_enabled:
        raise Conflict("Two-factor authentication is already on.")
    if not user.totp_secret:
        raise Conflict("Start the two-factor setup first, then enter the code it shows.")
    if not await accept_totp(db, user, cipher.decrypt(user.totp_secret), code):
        raise _invalid_code("That code is not valid. Enter the current 6-digit code from your app.")
    user.totp_enabled = True
    codes = await issue_recovery_codes(db, user)
    await record(db, user_actor(user, ip), "auth.2fa.enable", "user", user.id)
    log.info("totp.enabled", user_id=str(user.id))
    return codes


async def disable_two_factor(
    db: AsyncSession, user: User, password: str, code: str, cipher: SecretCipher, *, ip: str | None
) -> None:
    """Turn two-factor off: needs the password (when the account has one) and a valid code."""
    if not user.totp_enabled:
        raise Conflict("Two-factor authentication is not on.")
    if user.password_hash is not None:
        valid, _ = verify_password(password, user.password_hash)
        if not valid:
            message = "The password is incorrect."
            raise ValidationFailed([FieldError("password", message)], detail=message)
    if await verify_second_factor(db, user, code, cipher) is None:
        raise _invalid_code()
    user.totp_enabled = False
    user.totp_secret = None
    await delete_recovery_codes(db, user)
    await record(db, user_actor(user, ip), "auth.2fa.disable", "user", user.id)
    log.info("totp.disabled", user_id=str(user.id))


async def regenerate_recovery_codes(
    db: AsyncSession, user: User, code: str, cipher: SecretCipher, *, ip: str | None
) -> list[str]:
    """Replace the recovery codes (the old ones stop working); needs a valid code."""
    if not user.totp_enabled:
        raise Conflict("Turn two-factor authentication on first.")
    if await verify_second_factor(db, user, code, cipher) is None:
        raise _invalid_code()
    codes = await issue_recovery_codes(db, user)
    await record(db, user_actor(user, ip), "auth.2fa.recovery_codes", "user", user.id)
    return codes


async def start_challenge(db: AsyncSession, user: User) -> str:
    """Open a second-factor challenge for a user whose password was verified; return its token.

    The caller (sign-in) answers with this token instead of a session; the 2FA routes
    exchange it, with a valid TOTP or recovery code, for a session. The token lives five
    minutes, allows five wrong codes and is stored as its SHA-256 digest.
    """
    token = secrets.token_urlsafe(32)
    db.add(
        OneTimeToken(
            user_id=user.id,
            purpose=TokenPurpose.TWO_FACTOR,
            token_hash=hash_token(token),
            expires_at=datetime.now(UTC) + CHALLENGE_LIFETIME,
            data={"attempts": 0},
        )
    )
    await db.flush()
    return token


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _open_challenge(db: AsyncSession, token: str) -> tuple[OneTimeToken, User]:
    if not token or len(token) > 256:
        raise Unauthorized(CHALLENGE_GONE)
    query = (
        select(OneTimeToken)
        .where(
            OneTimeToken.token_hash == hash_token(token),
            OneTimeToken.purpose == TokenPurpose.TWO_FACTOR,
        )
        .with_for_update()
    )
    challenge = (await db.execute(query)).scalar_one_or_none()
    now = datetime.now(UTC)
    if (
        challenge is None
        or challenge.used_at is not None
        or _aware(challenge.expires_at) <= now
        or int(challenge.data.get("attempts", 0)) >= MAX_CHALLENGE_ATTEMPTS
        or challenge.user_id is None
    ):
        raise Unauthorized(CHALLENGE_GONE)
    user = await db.get(User, challenge.user_id)
    if user is None or user.suspended or not user.totp_enabled:
        raise Unauthorized(CHALLENGE_GONE)
    return challenge, user


async def complete_challenge(
    db: AsyncSession,
    token: str,
    code: str,
    cipher: SecretCipher,
    *,
    ip: str | None,
    user_agent: str | None,
    limiter: RateLimiter | None = None,
) -> tuple[User, str, SecondFactor]:
    """Exchange a challenge token and a valid code for a session: (user, cookie token, factor).

    A wrong code counts against the challenge and is committed before the error is raised, so
    the count survives the request's rollback. With a `limiter`, attempts are rate limited per
    address and wrong codes per account (never one global bucket).
    """
    challenge, user = await _open_challenge(db, token)
    if limiter is not None:  # counts the address; checks (does not count) the account
        await limiter.attempt("two_factor", account=str(user.id), ip=ip, count_account=False)
    actor = user_actor(user, ip)
    method = await verify_second_factor(db, user, code, cipher)
    if method is None:
        attempts = int(challenge.data.get("attempts", 0)) + 1
        challenge.data = {**challenge.data, "attempts": attempts}
        if attempts >= MAX_CHALLENGE_ATTEMPTS:
            challenge.used_at = datetime.now(UTC)
        await record(
            db,
            actor,
            "auth.2fa.challenge",
            "user",
            user.id,
            status=AuditStatus.FAILURE,
            error="invalid code",
            details={"attempts": attempts},
        )
        await db.commit()
        log.info("totp.challenge_failed", user_id=str(user.id), attempts=attempts)
        if limiter is not None:
            await limiter.failed("two_factor", account=str(user.id), ip=ip)
        raise Unauthorized(WRONG_CODE if attempts < MAX_CHALLENGE_ATTEMPTS else CHALLENGE_GONE)
    claimed = await db.execute(
        update(OneTimeToken)
        .where(OneTimeToken.id == challenge.id, OneTimeToken.used_at.is_(None))
        .values(used_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise Unauthorized(CHALLENGE_GONE)
    user.last_login_at = datetime.now(UTC)
    session_token = await create_session(db, user, ip=ip, user_agent=user_agent)
    await record(db, actor, "auth.2fa.challenge", "user", user.id, details={"method": method})
    log.info("totp.challenge_passed", user_id=str(user.id), method=method)
    return user, session_token, method
