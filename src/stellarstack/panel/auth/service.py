"""Signing in and recovering an account: credentials to a session, forgotten passwords.

Unknown and known addresses get the same answer and cost the same work (a password hash is
always verified; reset emails go out in the background), so neither the answer nor its timing
tells an attacker which accounts exist.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth import totp
from stellarstack.panel.auth.mailer import Mailer, password_reset_mail
from stellarstack.panel.auth.passwords import (
    MAX_PASSWORD,
    check_password_policy,
    hash_password,
    verify_password,
)
from stellarstack.panel.auth.ratelimit import RateLimiter
from stellarstack.panel.auth.sessions import create_session, revoke_other_sessions
from stellarstack.panel.auth.tokens import consume_token, issue_token, void_tokens
from stellarstack.panel.db.base import utcnow
from stellarstack.panel.db.enums import ActorType, Role, TokenPurpose
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.audit.service import Actor, record, record_detached
from stellarstack.panel.errors import BadRequest, Forbidden, RateLimited, Unauthorized

__all__ = [
    "INVALID_CREDENTIALS",
    "SignInResult",
    "actor_for",
    "count_users",
    "create_user",
    "find_user_by_email",
    "is_plausible_email",
    "normalize_email",
    "request_password_reset",
    "reset_password",
    "sign_in",
]

log = get_logger(__name__)

INVALID_CREDENTIALS = "The email or password is incorrect."
UNVERIFIED = (
    "Confirm your email address first: open the link we sent you. "
    "No email? Ask for a new one at /auth/verify."
)
MAX_EMAIL = 320
# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    """The stored form of an email address (trimmed, lowercased)."""
    return email.strip().lower()


def is_plausible_email(email: str) -> bool:
    """Whether a string looks like an email address (mail delivery is the real test)."""
    return len(email) <= MAX_EMAIL and bool(_EMAIL.match(email)) and email.isprintable()


def actor_for(user: User | None, ip: str | None) -> Actor:
    """The audit actor for a person (or an anonymous caller) at an address."""
    if user is None:
        return Actor(ActorType.USER, "anonymous", ip=ip)
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=ip)


async def find_user_by_email(db: AsyncSession, email: str) -> User | None:
    """Look up a user by email, case-insensitively."""
    result = await db.execute(select(User).where(User.email == normalize_email(email)))
    return result.scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class SignInResult:
    """A session token, or (two-factor accounts) a challenge token to complete first."""

    user: User
    session_token: str | None = None
    challenge_token: str | None = None


async def sign_in(
    db: AsyncSession,
    email: str,
    password: str,
    *,
    ip: str | None,
    user_agent: str | None,
    limiter: RateLimiter | None = None,
    database: Database | None = None,
    require_verified: bool = False,
) -> SignInResult:
    """Verify credentials and open a session (or a two-factor challenge)."""
    typed = normalize_email(email)[:MAX_EMAIL]
    if limiter is not None:
        await limiter.attempt("sign_in", account=typed, ip=ip, count_account=False)
    user = await find_user_by_email(db, typed) if typed else None
    # Oversized passwords are refused without hashing, but still cost one dummy verification.
    candidate = password if len(password) <= MAX_PASSWORD else ""
    valid, upgraded = verify_password(candidate, user.password_hash if user else None)
    if user is None or not valid or not password or candidate != password:
        log.info("auth.sign_in_failed", known=user is not None, ip=ip)
        if limiter is not None:
            with contextlib.suppress(RateLimited):  # this attempt's answer stays "incorrect"
                await limiter.failed("sign_in", account=typed, ip=ip)
        if database is not None:
            await record_detached(
                database,
                actor_for(user, ip),
                "auth.sign_in",
                "user",
                user.id if user else None,
                error="invalid credentials",
                details={"email": typed},
            )
        raise Unauthorized(INVALID_CREDENTIALS)
    if user.suspended:
        raise Forbidden("This account is suspended. Contact the panel administrator.")
    if require_verified and not user.email_verified:
        raise Forbidden(UNVERIFIED)
    if upgraded:
        user.password_hash = upgraded
    if user.totp_enabled:
        challenge = await totp.start_challenge(db, user)
        await record(
            db,
            actor_for(user, ip),
            "auth.sign_in",
            "user",
            user.id,
            details={"stage": "password", "twoFactor": True},
        )
        return SignInResult(user, challenge_token=challenge)
    token = await create_session(db, user, ip=ip, user_agent=user_agent)
    user.last_login_at = utcnow()
    await record(db, actor_for(user, ip), "auth.sign_in", "user", user.id)
    return SignInResult(user, session_token=token)


async def request_password_reset(
    db: AsyncSession,
    email: str,
    *,
    ip: str | None,
    limiter: RateLimiter,
    mailer: Mailer,
    public_url: str,
) -> None:
    """Email a reset link when the account exists; the caller answers the same either way."""
    typed = normalize_email(email)[:MAX_EMAIL]
    await limiter.attempt("reset", account=typed, ip=ip)
    user = await find_user_by_email(db, typed) if is_plausible_email(typed) else None
    if user is None or user.suspended:
        log.info("auth.reset_requested_unknown", ip=ip)
        return
    token = await issue_token(db, TokenPurpose.RESET_PASSWORD, user_id=user.id, email=user.email)
    await record(db, actor_for(user, ip), "auth.password_reset_requested", "user", user.id)
    mailer.send_later(password_reset_mail(public_url, user.email, token))


async def reset_password(db: AsyncSession, token: str, password: str, *, ip: str | None) -> User:
    """Set a new password with a reset token; every session of the account ends."""
    used = await consume_token(db, TokenPurpose.RESET_PASSWORD, token)
    user = await db.get(User, used.user_id) if used.user_id else None
    if user is None:
        raise BadRequest("This link is invalid or has expired. Ask for a new one.")
    check_password_policy(password, user.email)
    if user.suspended:
        raise Forbidden("This account is suspended. Contact the panel administrator.")
    user.password_hash = hash_password(password)
    # Whoever could read the reset email controls the inbox, so the address is proven.
    user.email_verified = user.email_verified or used.email == user.email
    await void_tokens(db, user.id, TokenPurpose.RESET_PASSWORD)
    ended = await revoke_other_sessions(db, user.id)
    await record(
        db,
        actor_for(user, ip),
        "auth.password_reset",
        "user",
        user.id,
        details={"sessionsEnded": ended},
    )
    return user


async def create_user(
    db: AsyncSession,
    email: str,
    password: str | None,
    *,
    name: str | None = None,
    role: Role = Role.USER,
    email_verified: bool = True,
) -> User:
    """Create an account with a hashed password (operator-made accounts count as verified)."""
    user = User(
        email=normalize_email(email),
        name=name,
        password_hash=hash_password(password) if password else None,
        role=role,
        email_verified=email_verified,
    )
    db.add(user)
    await db.flush()
    return user


async def count_users(db: AsyncSession) -> int:
    """How many accounts exist."""
    return int((await db.execute(select(func.count()).select_from(User))).scalar_one())
