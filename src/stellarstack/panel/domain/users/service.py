"""The signed-in user's own account: profile, email change, password change, sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.auth.mailer import Mailer
from stellarstack.panel.auth.passwords import (
    MAX_PASSWORD,
    check_password_policy,
    hash_password,
    verify_password,
)
from stellarstack.panel.auth.service import actor_for
from stellarstack.panel.auth.sessions import revoke_other_sessions, revoke_session_by_id
from stellarstack.panel.auth.signup import check_name, request_email_change
from stellarstack.panel.db.models import User
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.errors import FieldError, NotFound, ValidationFailed

__all__ = [
    "ProfileChange",
    "change_password",
    "end_other_sessions",
    "end_session",
    "update_profile",
]

INCORRECT_CURRENT = "Your current password is incorrect."


@dataclass(frozen=True, slots=True)
class ProfileChange:
    """What an update did: the user, and the address waiting for verification if any."""

    user: User
    pending_email: str | None = None


def _check_current_password(user: User, password: str | None, field: str) -> None:
    given = password or ""
    valid, _ = verify_password(given if len(given) <= MAX_PASSWORD else "", user.password_hash)
    if not given or not valid:
        raise ValidationFailed([FieldError(field, INCORRECT_CURRENT)], INCORRECT_CURRENT)


async def update_profile(
    db: AsyncSession,
    user: User,
    *,
    name: str | None,
    email: str | None,
    current_password: str | None,
    ip: str | None,
    mailer: Mailer,
    public_url: str,
) -> ProfileChange:
    """Change the display name now; send a verification link to a new email address."""
    changes: dict[str, object] = {}
    if name is not None:
        new_name = check_name(name)
        if new_name != user.name:
            changes["name"] = {"from": user.name, "to": new_name}
            user.name = new_name
    pending = None
    if email is not None and email.strip().lower() != user.email:
        _check_current_password(user, current_password, "currentPassword")
        pending = await request_email_change(db, user, email, mailer=mailer, public_url=public_url)
        changes["emailVerificationSentTo"] = pending
    if changes:
        await record(
            db, actor_for(user, ip), "user.profile_updated", "user", user.id, details=changes
        )
    return ProfileChange(user, pending)


async def change_password(
    db: AsyncSession,
    user: User,
    current_password: str,
    new_password: str,
    *,
    keep_session: uuid.UUID | None,
    ip: str | None,
) -> int:
    """Set a new password and end every other session; return how many ended."""
    _check_current_password(user, current_password, "currentPassword")
    check_password_policy(new_password, user.email, field="newPassword")
    user.password_hash = hash_password(new_password)
    ended = await revoke_other_sessions(db, user.id, keep=keep_session)
    await record(
        db,
        actor_for(user, ip),
        "user.password_changed",
        "user",
        user.id,
        details={"sessionsEnded": ended},
    )
    return ended


async def end_session(
    db: AsyncSession, user: User, session_id: uuid.UUID, *, ip: str | None
) -> None:
    """End one of the user's sessions; 404 for another user's or an unknown session."""
    if not await revoke_session_by_id(db, user.id, session_id):
        raise NotFound("You have no session with this id.")
    await record(db, actor_for(user, ip), "session.revoked", "session", session_id)


async def end_other_sessions(
    db: AsyncSession, user: User, *, keep: uuid.UUID | None, ip: str | None
) -> int:
    """End every session of the user but `keep`; return how many ended."""
    ended = await revoke_other_sessions(db, user.id, keep=keep)
    await record(
        db,
        actor_for(user, ip),
        "session.revoked_all",
        "user",
        user.id,
        details={"sessionsEnded": ended},
    )
    return ended
