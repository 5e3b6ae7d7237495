"""Console tokens: what a browser needs to open a server's console on its node (spec §6.1-6.2).

The panel signs a short-lived JWT (Ed25519, `aud` = node id) naming the server, its container
and what the holder may do there; the browser then talks to the daemon directly::

    grant = issue_console_token(access, node, signing_key, ip="203.0.113.9")
    grant.token, grant.socket_url, grant.permissions.can_write

`issue_console_token` raises `DependencyUnavailable` (503, Retry-After) when the node is not
online: a token for a node nobody can reach would only produce a failed socket.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast, get_args

from stellarstack.panel.auth.permissions import ServerAccess
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node
from stellarstack.panel.domain.nodes.signing_key import PanelSigningKey
from stellarstack.panel.errors import DependencyUnavailable
from stellarstack.panel.schemas import ApiModel
from stellarstack.protocol.tokens import ConsoleClaims, PowerAction, sign

__all__ = [
    "MINT_RATE",
    "NODE_OFFLINE_RETRY_SECONDS",
    "ConsoleGrant",
    "ConsoleGrantPermissions",
    "console_permissions",
    "issue_console_token",
    "socket_url",
]

NODE_OFFLINE_RETRY_SECONDS = 15
"""Retry-After for a node that is not online (about one heartbeat interval away)."""

MINT_RATE = "30/minute"
"""Console tokens per user and server: a page needs one per connect and one per ~4 minutes."""

POWER_ACTIONS: tuple[PowerAction, ...] = get_args(PowerAction)


class ConsoleGrantPermissions(ApiModel):
    """What the token lets its holder do on the console."""

    can_read: bool
    can_write: bool
    power: list[str]
    """Power actions the socket accepts (`set state`): start, stop, restart, kill."""
    granted: list[str]
    """The caller's server permissions, sorted (for the page to show what it may do)."""


class ConsoleGrant(ApiModel):
    """Body of `GET /api/v1/servers/{id}/console-token`."""

    token: str
    socket_url: str
    expires_at: datetime
    server_id: str
    node_id: str
    node_host: str
    node_port: int
    permissions: ConsoleGrantPermissions


def socket_url(node: Node, server_id: str) -> str:
    """The daemon's console WebSocket for a server (`wss://` when the node speaks HTTPS)."""
    scheme = "wss" if node.scheme == "https" else "ws"
    host = f"[{node.fqdn}]" if ":" in node.fqdn else node.fqdn
    return f"{scheme}://{host}:{node.port}/api/servers/{server_id}/ws"


def console_permissions(access: ServerAccess) -> ConsoleGrantPermissions:
    """Read with `server.console`, write with `server.console.send`, power per action."""
    power = [a for a in POWER_ACTIONS if access.has(f"server.power.{a}")]
    return ConsoleGrantPermissions(
        can_read=access.has("server.console"),
        can_write=access.has("server.console.send"),
        power=power,
        granted=sorted(access.permissions),
    )


def issue_console_token(
    access: ServerAccess, node: Node, key: PanelSigningKey, *, ip: str | None
) -> ConsoleGrant:
    """Sign a five-minute console token for the caller on `access.server`'s node."""
    if node.status != NodeStatus.ONLINE:
        raise DependencyUnavailable(
            f"The node {node.name!r} hosting this server is {node.status.value}; "
            "the console opens once it is back online.",
            headers={"Retry-After": str(NODE_OFFLINE_RETRY_SECONDS)},
        )
    server, user = access.server, access.principal.user
    permissions = console_permissions(access)
    claims = ConsoleClaims.issue(
        node_id=str(node.id),
        server_id=str(server.id),
        user_id=str(user.id),
        container_id=server.container_id or server.container_name or "",
        can_read=permissions.can_read,
        can_write=permissions.can_write,
        power=cast(tuple[PowerAction, ...], tuple(permissions.power)),
        username=(user.name or user.email)[:255],
        ip=(ip or "")[:64],
    )
    return ConsoleGrant(
        token=sign(claims, key.private_key),
        socket_url=socket_url(node, str(server.id)),
        expires_at=datetime.fromtimestamp(claims.exp, UTC),
        server_id=str(server.id),
        node_id=str(node.id),
        node_host=node.fqdn,
        node_port=node.port,
        permissions=permissions,
    )
