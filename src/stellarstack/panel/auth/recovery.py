"""Two-factor recovery codes: ten single-use codes, shown once, stored as SHA-256 digests."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.models import RecoveryCode, User

__all__ = [
    "RECOVERY_CODE_COUNT",
    "consume_recovery_code",
    "delete_recovery_codes",
    "issue_recovery_codes",
    "looks_like_recovery_code",
    "remaining_recovery_codes",
]

RECOVERY_CODE_COUNT = 10
# No 0/o or 1/l: codes are copied by hand from paper.
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_HALF = 5
_SHAPE = re.compile(rf"^[{_ALPHABET}]{{{_HALF * 2}}}$")


def _normalize(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def looks_like_recovery_code(code: str) -> bool:
    """Whether a string has the shape of a recovery code (`abcde-23456`, any case or spacing)."""
    return len(code) <= 32 and bool(_SHAPE.match(_normalize(code)))


def _digest(user_id: uuid.UUID, code: str) -> str:
    # Salted with the user id, so equal codes of two users never share a digest.
    return hashlib.sha256(f"{user_id}:{_normalize(code)}".encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_HALF * 2))
    return f"{raw[:_HALF]}-{raw[_HALF:]}"


async def delete_recovery_codes(db: AsyncSession, user: User) -> None:
    """Forget every recovery code of a user (2FA turned off, or new codes issued)."""
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


async def issue_recovery_codes(db: AsyncSession, user: User) -> list[str]:
    """Replace a user's recovery codes with ten new ones; return them (shown only now)."""
    await delete_recovery_codes(db, user)
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add(_new_code())
    ordered = sorted(codes)
    db.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(user.id, c)) for c in ordered)
    await db.flush()
    return ordered


async def consume_recovery_code(db: AsyncSession, user: User, code: str) -> bool:
    """Use up one recovery code; False when it is unknown or was used before.

    One conditional UPDATE, so two requests racing with the same code cannot both win.
    """
    if not looks_like_recovery_code(code):
        return False
    result = await db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _digest(user.id, code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def remaining_recovery_codes(db: AsyncSession, user: User) -> int:
    """How many unused recovery codes a user has left."""
    query = select(func.count()).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
    )
    return int((await db.execute(query)).scalar_one())
