"""Sharing a server: grant, change and revoke subusers; invite people without an account.

A granter hands out only permissions they hold themselves, and may not change or remove a
subuser's permissions they do not hold (a subuser with `server.subusers.update` cannot strip
the owner's chosen admin of rights the subuser never had). Nobody edits their own entry.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.auth.mailer import Mail
from stellarstack.panel.auth.permissions import SERVER_PERMISSIONS, ServerAccess
from stellarstack.panel.auth.service import find_user_by_email, normalize_email
from stellarstack.panel.auth.sessions import hash_token
from stellarstack.panel.db.enums import TokenPurpose
from stellarstack.panel.db.models import OneTimeToken, Subuser, User
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.subusers.schemas import SubuserOut
from stellarstack.panel.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed

__all__ = [
    "INVITATION_LIFETIME",
    "add_subuser",
    "claim_invitations",
    "get_subuser",
    "invitation_mail",
    "list_subusers",
    "remove_subuser",
    "update_subuser",
]

log = get_logger(__name__)

INVITATION_LIFETIME = timedelta(days=7)
MAX_SUBUSERS_PER_SERVER = 50


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _clean_permissions(names: list[str], access: ServerAccess) -> list[str]:
    wanted = sorted(set(names))
    unknown = [name for name in wanted if name not in SERVER_PERMISSIONS]
    if unknown:
        raise ValidationFailed(
            [FieldError("permissions", f"Unknown permission: {', '.join(unknown[:5])}.")]
        )
    beyond = [name for name in wanted if not access.has(name)]
    if beyond:
        raise Forbidden(f"You can only grant permissions you hold yourself: {', '.join(beyond)}.")
    return wanted


def _check_may_touch(access: ServerAccess, current: list[str], new: list[str]) -> None:
    changed = set(current) ^ set(new)
    foreign = sorted(name for name in changed if not access.has(name))
    if foreign:
        raise Forbidden(f"You cannot change permissions you do not hold: {', '.join(foreign)}.")


def _subuser_out(subuser: Subuser, user: User) -> SubuserOut:
    return SubuserOut(
        id=subuser.id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        permissions=list(subuser.permissions),
        pending=False,
        created_at=subuser.created_at,
    )


def _invitation_out(invitation: OneTimeToken) -> SubuserOut:
    return SubuserOut(
        id=invitation.id,
        user_id=None,
        email=invitation.email or "",
        name=None,
        permissions=list(invitation.data.get("permissions", [])),
        pending=True,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )


async def _pending_invitations(db: AsyncSession, server_id: uuid.UUID) -> list[OneTimeToken]:
    rows = await db.execute(
        select(OneTimeToken)
        .where(
            OneTimeToken.purpose == TokenPurpose.INVITE,
            OneTimeToken.used_at.is_(None),
            OneTimeToken.expires_at > _now(),
        )
        .order_by(OneTimeToken.created_at)
    )
    return [t for t in rows.scalars() if t.data.get("serverId") == str(server_id)]


async def list_subusers(db: AsyncSession, access: ServerAccess) -> list[SubuserOut]:
    """The server's subusers, then its pending invitations."""
    rows = await db.execute(
        select(Subuser, User)
        .join(User, User.id == Subuser.user_id)
        .where(Subuser.server_id == access.server.id)
        .order_by(Subuser.created_at)
    )
    granted = [_subuser_out(subuser, user) for subuser, user in rows.all()]
    invited = [_invitation_out(t) for t in await _pending_invitations(db, access.server.id)]
    return granted + invited


async def _find(
    db: AsyncSession, access: ServerAccess, entry_id: uuid.UUID
) -> tuple[Subuser, User] | OneTimeToken:
    row = (
        await db.execute(
            select(Subuser, User)
            .join(User, User.id == Subuser.user_id)
            .where(Subuser.id == entry_id, Subuser.server_id == access.server.id)
        )
    ).first()
    if row is not None:
        return row[0], row[1]
    invitation = await db.get(OneTimeToken, entry_id)
    if (
        invitation is not None
        and invitation.purpose == TokenPurpose.INVITE
        and invitation.used_at is None
        and invitation.data.get("serverId") == str(access.server.id)
    ):
        return invitation
    raise NotFound("There is no subuser with this id on this server.")


async def get_subuser(db: AsyncSession, access: ServerAccess, entry_id: uuid.UUID) -> SubuserOut:
    """One subuser or pending invitation of the server."""
    found = await _find(db, access, entry_id)
    return _invitation_out(found) if isinstance(found, OneTimeToken) else _subuser_out(*found)


async def add_subuser(
    db: AsyncSession, access: ServerAccess, email: str, permissions: list[str]
) -> tuple[SubuserOut, str | None]:
    """Grant an existing user access, or invite an unknown address; return the entry and,
    for an invitation, the token for the emailed link."""
    address = normalize_email(email)
    if "@" not in address.strip("@") or any(ch.isspace() for ch in address):
        raise ValidationFailed([FieldError("email", "Enter an email address like a@example.com.")])
    granted = _clean_permissions(permissions, access)
    server = access.server
    existing = await db.execute(select(Subuser.id).where(Subuser.server_id == server.id))
    if len(existing.all()) >= MAX_SUBUSERS_PER_SERVER:
        raise Conflict(f"A server can have at most {MAX_SUBUSERS_PER_SERVER} subusers.")
    user = await find_user_by_email(db, address)
    actor = access.principal.actor
    if user is None:
        return await _invite(db, access, address, granted)
    if user.id == server.owner_id:
        raise Conflict("This person owns the server and already has every permission.")
    if user.id == access.principal.user.id:
        raise Conflict("You cannot add yourself as a subuser.")
    duplicate = await db.execute(
        select(Subuser.id).where(Subuser.server_id == server.id, Subuser.user_id == user.id)
    )
    if duplicate.first() is not None:
        raise Conflict("This person is already a subuser of this server.")
    subuser = Subuser(user_id=user.id, server_id=server.id, permissions=granted)
    db.add(subuser)
    await db.flush()
    details = {"userId": str(user.id), "email": user.email, "permissions": granted}
    await record(db, actor, "subuser.grant", "server", server.id, details=details)
    return _subuser_out(subuser, user), None


async def _invite(
    db: AsyncSession, access: ServerAccess, address: str, permissions: list[str]
) -> tuple[SubuserOut, str]:
    server = access.server
    for pending in await _pending_invitations(db, server.id):
        if pending.email == address:
            raise Conflict("This address has already been invited to this server.")
    token = secrets.token_urlsafe(32)
    invitation = OneTimeToken(
        user_id=None,
        purpose=TokenPurpose.INVITE,
        token_hash=hash_token(token),
        email=address,
        data={
            "serverId": str(server.id),
            "permissions": permissions,
            "invitedBy": str(access.principal.user.id),
        },
        expires_at=_now() + INVITATION_LIFETIME,
    )
    db.add(invitation)
    await db.flush()
    details = {"email": address, "permissions": permissions}
    await record(db, access.principal.actor, "subuser.invite", "server", server.id, details=details)
    log.info("subuser.invited", server_id=str(server.id), email=address)
    return _invitation_out(invitation), token


async def update_subuser(
    db: AsyncSession, access: ServerAccess, entry_id: uuid.UUID, permissions: list[str]
) -> SubuserOut:
    """Replace a subuser's (or invitation's) permission list."""
    found = await _find(db, access, entry_id)
    granted = _clean_permissions(permissions, access)
    if isinstance(found, OneTimeToken):
        _check_may_touch(access, list(found.data.get("permissions", [])), granted)
        found.data = {**found.data, "permissions": granted}
        return _invitation_out(found)
    subuser, user = found
    if user.id == access.principal.user.id:
        raise Forbidden("You cannot change your own permissions.")
    _check_may_touch(access, list(subuser.permissions), granted)
    previous = list(subuser.permissions)
    subuser.permissions = granted
    details = {"userId": str(user.id), "from": previous, "to": granted}
    await record(
        db, access.principal.actor, "subuser.update", "server", access.server.id, details=details
    )
    return _subuser_out(subuser, user)


async def remove_subuser(db: AsyncSession, access: ServerAccess, entry_id: uuid.UUID) -> None:
    """Revoke a subuser's access (or cancel an invitation) at once."""
    found = await _find(db, access, entry_id)
    if isinstance(found, OneTimeToken):
        _check_may_touch(access, list(found.data.get("permissions", [])), [])
        found.used_at = _now()
        found.data = {**found.data, "cancelled": True}
        details = {"email": found.email, "invitation": True}
    else:
        subuser, user = found
        _check_may_touch(access, list(subuser.permissions), [])
        await db.delete(subuser)
        details = {"userId": str(user.id), "email": user.email}
    await record(
        db, access.principal.actor, "subuser.revoke", "server", access.server.id, details=details
    )


async def claim_invitations(db: AsyncSession, user: User) -> int:
    """Turn the server invitations sent to a (verified) user's address into subusers.

    Call after sign-up (which consumes the invitation token it came with), email
    verification and OAuth account creation. Each invitation is claimed once.
    """
    rows = await db.execute(
        select(OneTimeToken).where(
            OneTimeToken.purpose == TokenPurpose.INVITE, OneTimeToken.email == user.email
        )
    )
    claimed = 0
    now = _now()
    for invitation in rows.scalars():
        data = invitation.data
        if "serverId" not in data or data.get("claimedBy"):
            continue
        # Used before now by sign-up is fine; expired or cancelled (used, never claimed) is not.
        cancelled = invitation.used_at is not None and data.get("cancelled")
        if cancelled or _aware(invitation.expires_at) <= now:
            continue
        invitation.data = {**data, "claimedBy": str(user.id)}
        invitation.used_at = invitation.used_at or now
        server_id = uuid.UUID(str(data["serverId"]))
        taken = await db.execute(
            select(Subuser.id).where(Subuser.server_id == server_id, Subuser.user_id == user.id)
        )
        if taken.first() is None:
            permissions = [p for p in data.get("permissions", []) if p in SERVER_PERMISSIONS]
            db.add(Subuser(user_id=user.id, server_id=server_id, permissions=permissions))
            claimed += 1
    await db.flush()
    return claimed


def invitation_mail(public_url: str, to: str, token: str, server_name: str) -> Mail:
    """The message inviting someone without an account to a shared server."""
    link = f"{public_url.rstrip('/')}/auth/signup?invite={token}"
    body = (
        f"You have been invited to help run the game server “{server_name}” on StellarStack.\n\n"
        f"Create your account with this address to accept:\n\n{link}\n\n"
        "The invitation works once and expires in 7 days. If you did not expect it, ignore it.\n"
    )
    return Mail(to, "You are invited to a game server", body, link)
