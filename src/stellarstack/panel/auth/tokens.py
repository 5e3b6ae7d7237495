"""Single-use, expiring, purpose-bound tokens sent by email (verification, reset, invitation).

Only the SHA-256 of a token is stored. A token is valid for exactly one purpose, until it
expires or is used once; issuing a new one for the same user and purpose voids the older ones,
so only the latest email works.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.auth.sessions import hash_token
from stellarstack.panel.db.enums import TokenPurpose
from stellarstack.panel.db.models import OneTimeToken
from stellarstack.panel.errors import BadRequest

__all__ = ["LIFETIMES", "MAX_TOKEN_LENGTH", "consume_token", "issue_token", "void_tokens"]

LIFETIMES: dict[TokenPurpose, timedelta] = {
    TokenPurpose.VERIFY_EMAIL: timedelta(hours=24),
    TokenPurpose.RESET_PASSWORD: timedelta(hours=1),
    TokenPurpose.INVITE: timedelta(days=7),
}
MAX_TOKEN_LENGTH = 256
INVALID_LINK = "This link is invalid or has expired. Ask for a new one."


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def void_tokens(db: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose) -> None:
    """Mark every unused token of a user for a purpose as used."""
    await db.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=_now())
    )


async def issue_token(
    db: AsyncSession,
    purpose: TokenPurpose,
    *,
    user_id: uuid.UUID | None,
    email: str | None,
    data: dict[str, Any] | None = None,
) -> str:
    """Store a new token and return its plaintext (shown only in the email)."""
    if user_id is not None:
        await void_tokens(db, user_id, purpose)
    token = secrets.token_urlsafe(32)
    db.add(
        OneTimeToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_token(token),
            email=email,
            data=data or {},
            expires_at=_now() + LIFETIMES[purpose],
        )
    )
    await db.flush()
    return token


async def consume_token(db: AsyncSession, purpose: TokenPurpose, token: str) -> OneTimeToken:
    """Use a token once: 400 when it is unknown, expired, used, or meant for another purpose."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadRequest(INVALID_LINK)
    now = _now()
    # The guarded UPDATE makes "use once" hold under concurrent requests on both engines.
    claimed = await db.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.token_hash == hash_token(token),
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(OneTimeToken.id)
    )
    token_id = claimed.scalar_one_or_none()
    if token_id is None:
        raise BadRequest(INVALID_LINK)
    row = (await db.execute(select(OneTimeToken).where(OneTimeToken.id == token_id))).scalar_one()
    if _aware(row.expires_at) <= now:  # pragma: no cover - guarded by the UPDATE above
        raise BadRequest(INVALID_LINK)
    return row
