"""The permission catalogue, the role matrix (spec §4.4) and the two route guards.

Two kinds of permission exist:

- **platform** permissions (`user.view`, `node.create`, `audit.view`…) come from a user's role
  and guard admin routes through `require_permission("user.view")`;
- **server** permissions (`server.console`, `server.power.start`…) are held per server: the
  owner holds all of them, a subuser the list it was granted, and staff roles a fixed set on
  every server. `require_server_permission("server.console")` resolves the server from the
  path and answers 404 (not 403) when the caller cannot see that server at all.

An API key narrows, never widens: what a request may do is the key's permission list
intersected with what its user may do right now (a demoted admin's keys lose power at once).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Path
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ApiKeyKind, Role
from stellarstack.panel.db.models import Server, Subuser
from stellarstack.panel.deps import AnyPrincipal, CurrentPrincipal, DbSession
from stellarstack.panel.errors import Forbidden, NotFound

__all__ = [
    "ALL_PERMISSIONS",
    "PLATFORM_PERMISSIONS",
    "ROLE_PERMISSIONS",
    "ROLE_RANK",
    "ROLE_SERVER_PERMISSIONS",
    "SERVER_PERMISSIONS",
    "ServerAccess",
    "find_server",
    "outranks",
    "platform_permissions",
    "require_permission",
    "require_server_permission",
    "server_permissions",
    "unknown_permissions",
]

SERVER_PERMISSIONS: dict[str, str] = {
    "server.view": "See the server, its status and resource use",
    "server.console": "Watch the live console",
    "server.console.send": "Send console commands",
    "server.power.start": "Start the server",
    "server.power.stop": "Stop the server",
    "server.power.restart": "Restart the server",
    "server.power.kill": "Force-kill the server",
    "server.files.read": "List and download files",
    "server.files.write": "Create, upload and edit files",
    "server.files.delete": "Delete files",
    "server.files.archive": "Compress and decompress archives",
    "server.sftp": "Connect over SFTP",
    "server.backups.read": "List backups",
    "server.backups.create": "Create backups",
    "server.backups.restore": "Restore backups",
    "server.backups.download": "Download backups",
    "server.backups.delete": "Delete backups",
    "server.schedules.read": "List schedules",
    "server.schedules.create": "Create schedules",
    "server.schedules.update": "Change schedules",
    "server.schedules.delete": "Delete schedules",
    "server.subusers.read": "List subusers",
    "server.subusers.create": "Invite subusers",
    "server.subusers.update": "Change subusers' permissions",
    "server.subusers.delete": "Remove subusers",
    "server.startup.read": "See startup variables",
    "server.startup.update": "Change startup variables",
    "server.network": "Manage allocations (ports)",
    "server.databases": "Manage databases",
    "server.settings": "Rename the server and change its description",
    "server.reinstall": "Reinstall the server",
    "server.update": "Update the game version",
    "server.delete": "Delete the server",
}

PLATFORM_PERMISSIONS: dict[str, str] = {
    "user.view": "See users",
    "user.create": "Create users",
    "user.update": "Change users' profiles and roles",
    "user.suspend": "Suspend and unsuspend users",
    "user.delete": "Delete users",
    "user.servers": "Manage any user's servers",
    "node.view": "See nodes",
    "node.create": "Register nodes",
    "node.settings": "Change nodes, drain them",
    "node.delete": "Remove nodes",
    "audit.view": "Read the audit log",
    "platform.stats": "See platform statistics",
    "platform.blueprints": "Manage blueprints",
    "platform.settings": "Change platform settings",
    "platform.billing": "Access billing",
}

ALL_PERMISSIONS: frozenset[str] = frozenset(SERVER_PERMISSIONS) | frozenset(PLATFORM_PERMISSIONS)

# Higher ranks may manage lower ones; SUPPORT and MODERATOR are siblings under ADMIN in the
# spec's tree, but MODERATOR holds strictly more, so a line is the honest order.
ROLE_RANK: dict[Role, int] = {
    Role.USER: 0,
    Role.SUPPORT: 1,
    Role.MODERATOR: 2,
    Role.ADMIN: 3,
    Role.SUPER_ADMIN: 4,
}

_SUPPORT = frozenset({"user.view", "node.view", "audit.view", "platform.stats"})
_MODERATOR = _SUPPORT | {"user.suspend"}
_ADMIN = _MODERATOR | {
    "user.create",
    "user.update",
    "user.servers",
    "node.create",
    "node.settings",
    "node.delete",
    "platform.blueprints",
}

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.USER: frozenset(),
    Role.SUPPORT: _SUPPORT,
    Role.MODERATOR: _MODERATOR,
    Role.ADMIN: _ADMIN,
    Role.SUPER_ADMIN: frozenset(PLATFORM_PERMISSIONS),
}

_STAFF_READ = frozenset(
    {
        "server.view",
        "server.console",
        "server.files.read",
        "server.backups.read",
        "server.schedules.read",
        "server.subusers.read",
        "server.startup.read",
    }
)
_STAFF_OPERATE = _STAFF_READ | {
    "server.console.send",
    "server.power.start",
    "server.power.stop",
    "server.power.restart",
    "server.power.kill",
}

# What staff may do on every server, whoever owns it.
ROLE_SERVER_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.USER: frozenset(),
    Role.SUPPORT: _STAFF_READ,
    Role.MODERATOR: _STAFF_OPERATE,
    Role.ADMIN: frozenset(SERVER_PERMISSIONS),
    Role.SUPER_ADMIN: frozenset(SERVER_PERMISSIONS),
}


def platform_permissions(role: Role) -> frozenset[str]:
    """The platform permissions a role grants."""
    return ROLE_PERMISSIONS.get(role, frozenset())


def outranks(actor: Role, target: Role) -> bool:
    """Whether `actor` stands strictly above `target` in the role hierarchy."""
    return ROLE_RANK[actor] > ROLE_RANK[target]


def unknown_permissions(names: Iterable[str], catalogue: Iterable[str]) -> list[str]:
    """The names that are not in the catalogue, in the order given."""
    known = set(catalogue)
    return [name for name in names if name not in known]


def _narrowed(principal: Principal, granted: frozenset[str]) -> frozenset[str]:
    key_scope = principal.key_permissions
    return granted if key_scope is None else granted & key_scope


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller must hold a platform permission (sessions or application keys).

    Usage: `principal: Annotated[Principal, Depends(require_permission("user.view"))]`.
    """
    if permission not in PLATFORM_PERMISSIONS:
        raise ValueError(f"unknown platform permission {permission!r}")

    async def guard(principal: AnyPrincipal) -> Principal:
        if principal.api_key is not None and principal.api_key.kind != ApiKeyKind.APPLICATION:
            raise Forbidden("Client API keys cannot use the admin API; create an application key.")
        held = _narrowed(principal, platform_permissions(principal.user.role))
        if permission not in held:
            if permission in platform_permissions(principal.user.role):
                raise Forbidden(f"This API key lacks the {permission} permission.")
            raise Forbidden(f"Your role does not allow this ({permission}).")
        return principal

    guard.__name__ = f"require_{permission.replace('.', '_')}"
    return guard


@dataclass(frozen=True, slots=True)
class ServerAccess:
    """A caller's standing on one server: who, which server, and what they may do there."""

    principal: Principal
    server: Server
    permissions: frozenset[str]
    is_owner: bool

    def has(self, permission: str) -> bool:
        """Whether the caller holds a server permission here."""
        return permission in self.permissions


async def find_server(db: AsyncSession, server_ref: str) -> Server | None:
    """A server by its UUID or its short identifier; None for anything else."""
    if len(server_ref) > 64 or not server_ref.isascii() or not server_ref.isprintable():
        return None  # PostgreSQL refuses NUL bytes outright: never send them
    try:
        server_id = uuid.UUID(server_ref)
    except ValueError:
        condition = Server.identifier == server_ref.lower()
    else:
        condition = Server.id == server_id
    return (await db.execute(select(Server).where(condition))).scalar_one_or_none()


async def server_permissions(
    db: AsyncSession, principal: Principal, server: Server
) -> frozenset[str] | None:
    """What the caller may do on a server (owner: all; subuser: its list; staff: by role).

    None means the server is invisible to the caller: not theirs, not shared, not staff.
    """
    user = principal.user
    granted: set[str] = set(ROLE_SERVER_PERMISSIONS.get(user.role, frozenset()))
    visible = bool(granted)
    if server.owner_id == user.id:
        granted |= set(SERVER_PERMISSIONS)
        visible = True
    else:
        subuser = (
            await db.execute(
                select(Subuser).where(Subuser.server_id == server.id, Subuser.user_id == user.id)
            )
        ).scalar_one_or_none()
        if subuser is not None:
            granted |= set(subuser.permissions) & set(SERVER_PERMISSIONS)
            visible = True
    if not visible:
        return None
    return _narrowed(principal, frozenset(granted))


def require_server_permission(
    permission: str,
) -> Callable[[str, CurrentPrincipal, AsyncSession], Awaitable[ServerAccess]]:
    """A dependency: the caller must hold `permission` on the server named by `{server_id}`.

    Usage: `access: Annotated[ServerAccess, Depends(require_server_permission("server.view"))]`.
    """
    if permission not in SERVER_PERMISSIONS:
        raise ValueError(f"unknown server permission {permission!r}")

    async def guard(
        server_id: Annotated[str, Path(max_length=64)],
        principal: CurrentPrincipal,
        db: DbSession,
    ) -> ServerAccess:
        server = await find_server(db, server_id)
        if server is None:
            raise NotFound("There is no server with this id.")
        held = await server_permissions(db, principal, server)
        if held is None:
            raise NotFound("There is no server with this id.")
        if permission not in held:
            raise Forbidden(f"You do not have the {permission} permission on this server.")
        return ServerAccess(principal, server, held, server.owner_id == principal.user.id)

    guard.__name__ = f"require_{permission.replace('.', '_')}"
    return guard
