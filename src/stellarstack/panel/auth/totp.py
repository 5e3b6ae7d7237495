"""Time-based one-time passwords: enrollment, verification (single use), the sign-in challenge."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.models import User

__all__ = ["start_challenge"]


async def start_challenge(db: AsyncSession, user: User) -> str:
    """Open a second-factor challenge for a user whose password was verified; return its token.

    The caller (sign-in) answers with this token instead of a session; the 2FA routes
    exchange it, with a valid TOTP or recovery code, for a session.
    """
    raise NotImplementedError("two-factor sign-in is being built (auth/totp.py)")
