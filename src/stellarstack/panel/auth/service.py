"""The sign-in flow: credentials to a session, with the same answer for unknown accounts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.auth.passwords import hash_password, verify_password
from stellarstack.panel.auth.sessions import create_session
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.errors import Forbidden, Unauthorized

__all__ = ["create_user", "find_user_by_email", "normalize_email", "sign_in"]

INVALID_CREDENTIALS = "The email or password is incorrect."


def normalize_email(email: str) -> str:
    """The stored form of an email address (trimmed, lowercased)."""
    return email.strip().lower()


async def find_user_by_email(db: AsyncSession, email: str) -> User | None:
    """Look up a user by email, case-insensitively."""
    result = await db.execute(select(User).where(User.email == normalize_email(email)))
    return result.scalar_one_or_none()


async def sign_in(
    db: AsyncSession, email: str, password: str, *, ip: str | None, user_agent: str | None
) -> tuple[User, str]:
    """Verify credentials and open a session; return the user and the cookie token."""
    user = await find_user_by_email(db, email)
    valid, upgraded = verify_password(password, user.password_hash if user else None)
    if user is None or not valid:
        raise Unauthorized(INVALID_CREDENTIALS)
    if user.suspended:
        raise Forbidden("This account is suspended.")
    if upgraded:
        user.password_hash = upgraded
    token = await create_session(db, user, ip=ip, user_agent=user_agent)
    return user, token


async def create_user(
    db: AsyncSession, email: str, password: str, *, name: str | None = None, role: Role = Role.USER
) -> User:
    """Create an account with a hashed password."""
    user = User(
        email=normalize_email(email),
        name=name,
        password_hash=hash_password(password),
        role=role,
        email_verified=role in (Role.ADMIN, Role.SUPER_ADMIN),
    )
    db.add(user)
    await db.flush()
    return user


async def count_users(db: AsyncSession) -> int:
    """How many accounts exist."""
    return int((await db.execute(select(func.count()).select_from(User))).scalar_one())
