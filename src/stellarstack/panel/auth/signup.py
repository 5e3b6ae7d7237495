"""Creating accounts and proving addresses: sign-up by policy, invitations, verification.

The operator chooses who may sign up (`STELLAR_SIGNUP_POLICY`): `closed` (the default: an
admin creates accounts or invites people), `invite` (only with an invitation link) or `open`.
Signing up with an address that already has an account answers exactly like a fresh sign-up
when verification is on, so the form cannot be used to find out who has an account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth.mailer import Mailer, verification_mail
from stellarstack.panel.auth.passwords import check_password_policy, hash_password
from stellarstack.panel.auth.ratelimit import RateLimiter
from stellarstack.panel.auth.service import (
    actor_for,
    create_user,
    find_user_by_email,
    is_plausible_email,
    normalize_email,
)
from stellarstack.panel.auth.tokens import consume_token, issue_token
from stellarstack.panel.db.enums import TokenPurpose
from stellarstack.panel.db.models import User
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.subusers.service import claim_invitations
from stellarstack.panel.errors import BadRequest, Conflict, FieldError, Forbidden, ValidationFailed
from stellarstack.settings import PanelSettings

__all__ = [
    "MAX_NAME",
    "SignUpResult",
    "check_name",
    "issue_invite",
    "request_email_change",
    "resend_verification",
    "send_verification",
    "sign_up",
    "verify_email",
]

log = get_logger(__name__)

MAX_NAME = 255
SIGNUP_CLOSED = "Sign-up is closed on this panel. Ask the administrator for an account."
INVITE_ONLY = "Sign-up on this panel needs an invitation. Ask the administrator for one."
BAD_EMAIL = "Enter an email address like name@example.com."


@dataclass(frozen=True, slots=True)
class SignUpResult:
    """The new account (None when the address was taken and that must stay secret)."""

    user: User | None
    verification_required: bool


def check_name(name: str | None) -> str | None:
    """A display name trimmed and checked: printable, at most 255 characters."""
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValidationFailed([FieldError("name", f"Use at most {MAX_NAME} characters.")])
    if not name.isprintable():
        raise ValidationFailed([FieldError("name", "Use printable characters only.")])
    return name or None


def _check_email(email: str) -> str:
    email = normalize_email(email)
    if not is_plausible_email(email):
        raise ValidationFailed([FieldError("email", BAD_EMAIL)], BAD_EMAIL)
    return email


async def send_verification(
    db: AsyncSession, user: User, email: str, mailer: Mailer, public_url: str
) -> None:
    """Email a link that proves `email` belongs to `user` (their address or a new one)."""
    token = await issue_token(db, TokenPurpose.VERIFY_EMAIL, user_id=user.id, email=email)
    mailer.send_later(verification_mail(public_url, email, token))


async def issue_invite(db: AsyncSession, email: str, *, invited_by: User | None = None) -> str:
    """Create an invitation for an address; return the token for the link `/auth/signup?invite=`."""
    email = _check_email(email)
    data = {"invitedBy": str(invited_by.id)} if invited_by else {}
    return await issue_token(db, TokenPurpose.INVITE, user_id=None, email=email, data=data)


async def sign_up(
    db: AsyncSession,
    settings: PanelSettings,
    *,
    email: str,
    password: str,
    name: str | None,
    invite: str | None,
    ip: str | None,
    limiter: RateLimiter,
    mailer: Mailer,
) -> SignUpResult:
    """Create an account as the sign-up policy allows; email a verification link if needed."""
    await limiter.hit("sign_up.ip", ip or "unknown")
    policy = settings.signup_policy
    if policy == "closed":
        raise Forbidden(SIGNUP_CLOSED)
    if policy == "invite" and not invite:
        raise Forbidden(INVITE_ONLY)
    email = _check_email(email)
    name = check_name(name)
    check_password_policy(password, email)
    if invite:
        used = await consume_token(db, TokenPurpose.INVITE, invite)
        if used.email != email:
            raise BadRequest("This invitation was sent to another address; sign up with that one.")
    verify = settings.require_email_verification and not invite
    existing = await find_user_by_email(db, email)
    if existing is not None:
        if not verify:
            raise Conflict("An account with this email already exists. Sign in instead.")
        hash_password(password)  # the same work as a real sign-up
        log.info("auth.sign_up_existing_address", ip=ip)
        return SignUpResult(None, verification_required=True)
    user = await create_user(db, email, password, name=name, email_verified=not verify)
    await record(
        db, actor_for(user, ip), "auth.sign_up", "user", user.id, details={"invited": bool(invite)}
    )
    if verify:
        await send_verification(db, user, email, mailer, settings.effective_public_url)
    if user.email_verified:
        await claim_invitations(db, user)
    return SignUpResult(user, verification_required=verify)


async def verify_email(db: AsyncSession, token: str, *, ip: str | None) -> User:
    """Mark an address as proven; for an email change, switch the account to it."""
    used = await consume_token(db, TokenPurpose.VERIFY_EMAIL, token)
    user = await db.get(User, used.user_id) if used.user_id else None
    if user is None or not used.email:
        raise BadRequest("This link is invalid or has expired. Ask for a new one.")
    if used.email != user.email:
        taken = await find_user_by_email(db, used.email)
        if taken is not None:
            raise Conflict("Another account uses this address now; choose a different one.")
        old = user.email
        user.email = used.email
        await record(
            db,
            actor_for(user, ip),
            "user.email_changed",
            "user",
            user.id,
            details={"from": old, "to": used.email},
        )
    user.email_verified = True
    await record(db, actor_for(user, ip), "auth.email_verified", "user", user.id)
    await claim_invitations(db, user)
    return user


async def resend_verification(
    db: AsyncSession,
    email: str,
    *,
    ip: str | None,
    limiter: RateLimiter,
    mailer: Mailer,
    public_url: str,
) -> None:
    """Send a new verification link to an unverified account (the same answer for any address)."""
    typed = normalize_email(email)[:320]
    await limiter.attempt("verify", account=typed, ip=ip)
    user = await find_user_by_email(db, typed) if is_plausible_email(typed) else None
    if user is None or user.email_verified or user.suspended:
        return
    await send_verification(db, user, user.email, mailer, public_url)


async def request_email_change(
    db: AsyncSession, user: User, new_email: str, *, mailer: Mailer, public_url: str
) -> str:
    """Send a verification link to a new address; the account switches when it is opened."""
    email = _check_email(new_email)
    if email == user.email:
        raise ValidationFailed([FieldError("email", "This is already your address.")])
    taken = await find_user_by_email(db, email)
    if taken is not None:
        raise ValidationFailed([FieldError("email", "Another account uses this address.")])
    await send_verification(db, user, email, mailer, public_url)
    return email
