"""Who may see which live events: decided from the database, re-decided when access changes.

A stream keeps the caller's credential (session cookie or API key) and calls
`resolve_visibility` again every few seconds and whenever `notify_access_changed` announces a
change on `ACCESS_CHANGED_CHANNEL` (a subuser removed, a key revoked, a server deleted…): a
credential that no longer authenticates (expired, revoked, suspended user) ends the stream,
and a server taken away stops its events at once.

- Server events need `server.view` on the server: its owner, a subuser granted it, staff whose
  role grants it on every server (support and up); an API key narrows what its user may do.
- Node events without a server (`node.heartbeat`, `node.status`, node-wide alerts) need the
  platform permission `node.view` (staff).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from stellarstack.broker import Broker, BrokerError
from stellarstack.logs import get_logger
from stellarstack.panel.auth import api_keys
from stellarstack.panel.auth.permissions import (
    ROLE_SERVER_PERMISSIONS,
    SERVER_PERMISSIONS,
    platform_permissions,
)
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.auth.sessions import SESSION_COOKIE, resolve_session
from stellarstack.panel.db.models import Server, Subuser, User
from stellarstack.panel.errors import PanelError

__all__ = [
    "ACCESS_CHANGED_CHANNEL",
    "Credential",
    "Visibility",
    "credential_of",
    "notify_access_changed",
    "resolve_visibility",
]

log = get_logger(__name__)

ACCESS_CHANGED_CHANNEL = "stellar:events:access"
"""Pub/sub channel announcing access changes (data: a user id, or `*` for anyone)."""

VIEW = "server.view"
NODE_VIEW = "node.view"


@dataclass(frozen=True, slots=True)
class Credential:
    """What the caller proved itself with, kept to re-check it during a long stream."""

    kind: Literal["session", "api_key"]
    token: str
    ip: str | None
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Visibility:
    """The servers and nodes whose events a caller may receive right now."""

    all_servers: bool = False
    servers: frozenset[str] = frozenset()
    nodes: bool = False
    only: frozenset[str] | None = None
    """The `?servers=` narrowing: only these servers' events, and no node-wide events."""

    def sees_server(self, server_id: str) -> bool:
        """Whether events of this server may be sent."""
        if self.only is not None and server_id not in self.only:
            return False
        return self.all_servers or server_id in self.servers

    def sees_node(self) -> bool:
        """Whether node-wide events (no server) may be sent."""
        return self.nodes and self.only is None

    def sees(self, server_id: str | None) -> bool:
        """Whether an event (of a server, or node-wide when `server_id` is None) may be sent."""
        return self.sees_node() if server_id is None else self.sees_server(server_id)


def credential_of(request: Request, principal: Principal) -> Credential:
    """The credential this request authenticated with."""
    if principal.method == "api_key":
        header = request.headers.get("authorization", "")
        token = header.strip().partition(" ")[2].strip()
        return Credential("api_key", token, principal.ip, principal.user.id)
    token = request.cookies.get(SESSION_COOKIE, "")
    return Credential("session", token, principal.ip, principal.user.id)


async def _reauthenticate(db: AsyncSession, credential: Credential) -> Principal | None:
    """The caller again, or None when the credential stopped working."""
    if credential.kind == "session":
        resolved = await resolve_session(db, credential.token)
        if resolved is None:
            return None
        return Principal(resolved[1], "session", session=resolved[0], ip=credential.ip)
    try:
        key, user = await api_keys.authenticate(
            db, credential.token, ip=credential.ip, now=datetime.now(UTC)
        )
    except PanelError:
        return None
    return Principal(user, "api_key", api_key=key, ip=credential.ip)


def _narrowed(principal: Principal, granted: Iterable[str]) -> frozenset[str]:
    scope = principal.key_permissions
    return frozenset(granted) if scope is None else frozenset(granted) & scope


async def _visible_servers(db: AsyncSession, principal: Principal, user: User) -> frozenset[str]:
    """Servers the user owns or shares with `server.view` (within the key's scope)."""
    if VIEW not in _narrowed(principal, SERVER_PERMISSIONS):
        return frozenset()
    owned = await db.scalars(select(Server.id).where(Server.owner_id == user.id))
    shared = await db.execute(
        select(Subuser.server_id, Subuser.permissions).where(Subuser.user_id == user.id)
    )
    visible = {str(server_id) for server_id in owned}
    visible |= {str(server_id) for server_id, granted in shared if VIEW in (granted or ())}
    return frozenset(visible)


async def resolve_visibility(
    db: AsyncSession, credential: Credential, *, only: frozenset[str] | None = None
) -> Visibility | None:
    """What the credential's owner may see now; None when the credential no longer works."""
    principal = await _reauthenticate(db, credential)
    if principal is None or principal.user.id != credential.user_id:
        return None
    user = principal.user
    staff = VIEW in _narrowed(principal, ROLE_SERVER_PERMISSIONS.get(user.role, ()))
    servers = frozenset() if staff else await _visible_servers(db, principal, user)
    nodes = NODE_VIEW in _narrowed(principal, platform_permissions(user.role))
    return Visibility(all_servers=staff, servers=servers, nodes=nodes, only=only)


async def notify_access_changed(broker: Broker, user_id: uuid.UUID | None = None) -> None:
    """Tell every replica's streams to re-check access now (one user's, or everyone's)."""
    try:
        await broker.publish(ACCESS_CHANGED_CHANNEL, json.dumps(str(user_id or "*")))
    except BrokerError as exc:  # streams re-check on their own within seconds anyway
        log.warning("events.access_notify_failed", error=str(exc))
