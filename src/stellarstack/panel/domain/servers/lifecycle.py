"""Changing a server after deployment: update, delete, suspend and unsuspend (spec §14.3).

- **update**: name and description at once; resources, variables and version are checked like
  a deployment (rules, quotas, node capacity) and saved, and take effect at the next (re)start.
- **delete**: `server.delete` goes to the node and the row is removed once the node confirms
  (the ports become free). An unreachable node makes it a 409, unless an administrator forces
  it: the row goes and the caller is warned that the container may still exist on the node.
- **suspend / unsuspend** (administrators): a suspended server is stopped (`server.stop`) and
  refuses power actions (`ensure_not_suspended`, called by the power routes) until unsuspended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker
from stellarstack.logs import get_logger
from stellarstack.panel.auth.permissions import server_permissions
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import CommandStatus, NodeStatus, ServerStatus
from stellarstack.panel.db.models import Server, ServerVariable, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.commands.service import send_command, wait_for
from stellarstack.panel.domain.servers import placement
from stellarstack.panel.domain.servers.deploy import (
    can_manage_any_server,
    resolve_blueprint,
    resolve_version,
)
from stellarstack.panel.domain.servers.quotas import check_quotas
from stellarstack.panel.domain.servers.schemas import ServerUpdate
from stellarstack.panel.domain.servers.variables import check_values
from stellarstack.panel.domain.servers.views import require
from stellarstack.panel.errors import Conflict, DependencyUnavailable, Forbidden, PanelError
from stellarstack.protocol.commands import CommandType
from stellarstack.protocol.servers import ServerDeletePayload
from stellarstack.settings import PanelSettings

__all__ = [
    "RESTART_NOTE",
    "Updated",
    "delete_server",
    "ensure_not_suspended",
    "suspend_server",
    "unsuspend_server",
    "update_server",
]

log = get_logger(__name__)

RESTART_NOTE = "Resource, variable and version changes take effect the next time it (re)starts."
# Node states in which the daemon can be reached through its command stream.
REACHABLE = frozenset({NodeStatus.ONLINE, NodeStatus.DRAINING, NodeStatus.UNHEALTHY})


@dataclass(frozen=True, slots=True)
class Updated:
    """What an update changed, and whether it waits for a restart."""

    changes: dict[str, Any]
    restart_required: bool


def ensure_not_suspended(server: Server) -> None:
    """409 when the server is suspended (power actions call this first)."""
    if server.suspended_at is not None or server.status == ServerStatus.SUSPENDED:
        reason = f" ({server.suspend_reason})" if server.suspend_reason else ""
        raise Conflict(
            f"This server is suspended{reason}; an administrator must unsuspend it first."
        )


async def _check_resources(
    db: AsyncSession, server: Server, memory: int, cpu: int, disk: int
) -> None:
    owner = await db.get(User, server.owner_id)
    if owner is not None:
        await check_quotas(db, owner, memory_mb=memory, cpu=cpu, disk_mb=disk, replacing=server.id)
    [load] = await placement.node_loads(db, [server.node])
    without = placement.NodeLoad(
        load.node,
        load.memory_mb - server.memory_mb,
        load.disk_mb - server.disk_mb,
        load.cpu - server.cpu_limit,
        load.servers - 1,
    )
    why = placement.fits(without, placement.Demand(memory, disk, cpu, ()))
    if why is not None:
        raise Conflict(f"Node {server.node.name!r} cannot hold these resources: {why}.")


async def update_server(
    db: AsyncSession, principal: Principal, server: Server, body: ServerUpdate
) -> Updated:
    """Apply a PATCH: each part needs its permission; resources stay within quotas."""
    held = await server_permissions(db, principal, server) or frozenset()
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    if sent & {"name", "description", "memory_mb", "cpu", "disk_mb"}:
        require(held, "server.settings")
    if "variables" in sent and body.variables is not None:
        require(held, "server.startup.update")
    if "version" in sent and body.version is not None:
        require(held, "server.update")
    tag = server.version_tag
    if body.variables is None and (body.version is None or body.version == tag):
        return await _apply_settings(db, principal, server, body, changes)
    row, spec = await resolve_blueprint(db, str(server.blueprint_id), deploying=False)
    if body.version is not None and body.version != server.version_tag:
        version = resolve_version(row, body.version)
        tag = version.tag if version else None
        changes["version"] = tag
        server.blueprint_version_id = version.id if version else None
        server.version_tag = tag
        server.docker_image = version.docker_image if version else None
    if body.variables is not None:
        current = {v.key: v.value for v in server.variables}
        values = check_values(spec, body.variables, version=tag, current=current)
        existing = {v.key: v for v in server.variables}
        for key, value in values.items():
            if key in existing:
                existing[key].value = value
            else:
                server.variables.append(ServerVariable(key=key, value=value))
        changes["variables"] = sorted(body.variables)
    return await _apply_settings(db, principal, server, body, changes)


async def _apply_settings(
    db: AsyncSession,
    principal: Principal,
    server: Server,
    body: ServerUpdate,
    changes: dict[str, Any],
) -> Updated:
    sent = body.model_fields_set
    memory = body.memory_mb or server.memory_mb
    cpu = body.cpu or server.cpu_limit
    disk = body.disk_mb or server.disk_mb
    if (memory, cpu, disk) != (server.memory_mb, server.cpu_limit, server.disk_mb):
        await _check_resources(db, server, memory, cpu, disk)
        changes["resources"] = {"memoryMb": memory, "cpu": cpu, "diskMb": disk}
        server.memory_mb, server.cpu_limit, server.disk_mb = memory, cpu, disk
    if body.name is not None and body.name != server.name:
        changes["name"] = server.name = body.name
    if "description" in sent and body.description != server.description:
        server.description = body.description
        changes["description"] = True
    restart = bool(changes.keys() & {"version", "variables", "resources"})
    if changes:
        server.updated_at = datetime.now(UTC)
        await record(db, principal.actor, "server.update", "server", server.id, details=changes)
    return Updated(changes, restart)


async def _remove(db: AsyncSession, server: Server) -> None:
    await placement.release_allocations(db, server.id)
    await db.execute(sa.delete(Server).where(Server.id == server.id))


async def delete_server(
    db: AsyncSession,
    database: Database,
    broker: Broker,
    settings: PanelSettings,
    principal: Principal,
    server: Server,
    *,
    force: bool = False,
) -> str | None:
    """Delete a server through its node; returns a warning when a forced delete skipped it."""
    if force and not can_manage_any_server(principal):
        raise Forbidden("Only administrators may force a delete.")
    node = server.node
    warning: str | None = None
    problem: str | None = None
    if node.status not in REACHABLE:
        problem = f"Node {node.name!r} is {node.status.value}, so it cannot remove the server"
    else:
        problem = await _delete_on_node(db, database, broker, settings, server, force=force)
    if problem is not None:
        if not force:
            raise Conflict(f"{problem}. Try again when the node is back, or force it (admins).")
        warning = f"{problem}; its container and files may remain on the node."
    await _remove(db, server)
    await record(
        db,
        principal.actor,
        "server.delete",
        "server",
        server.id,
        details={"name": server.name, "forced": force, **({"warning": warning} if warning else {})},
    )
    log.info("servers.deleted", server_id=str(server.id), forced=force, warned=warning is not None)
    return warning


async def _delete_on_node(
    db: AsyncSession,
    database: Database,
    broker: Broker,
    settings: PanelSettings,
    server: Server,
    *,
    force: bool,
) -> str | None:
    """Send `server.delete` and wait for it: None when done, else what went wrong."""
    payload = ServerDeletePayload(server_id=str(server.id)).to_wire()
    try:
        command = await send_command(
            db,
            broker,
            server.node,
            CommandType.SERVER_DELETE,
            payload=payload,
            ttl=settings.server_command_ttl,
            max_payload_bytes=settings.command_max_payload_bytes,
        )
    except PanelError as exc:
        return f"The delete could not be sent ({exc.detail or exc})"
    done = await wait_for(database, command.id, within=settings.server_delete_wait)
    if done is None or done.status == CommandStatus.SUCCEEDED:
        return None
    wait = settings.server_delete_wait
    if done.status in (CommandStatus.QUEUED, CommandStatus.DELIVERED):
        if force:
            return f"Node {server.node.name!r} did not confirm the delete within {wait:g} s"
        raise DependencyUnavailable(
            f"Node {server.node.name!r} did not confirm the delete within {wait:g} s; "
            "the server is kept. Try again shortly.",
            headers={"Retry-After": "5"},
        )
    return f"The node could not delete the server ({done.error or done.status.value})"


async def suspend_server(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    principal: Principal,
    server: Server,
    reason: str | None,
) -> str | None:
    """Suspend and stop a server (admins); returns a warning when the stop was not sent."""
    if not can_manage_any_server(principal):
        raise Forbidden("Only administrators may suspend servers.")
    server.suspended_at = server.suspended_at or datetime.now(UTC)
    server.suspend_reason = reason
    server.status = ServerStatus.SUSPENDED
    await record(
        db, principal.actor, "server.suspend", "server", server.id, details={"reason": reason}
    )
    await db.commit()
    if server.node.status not in REACHABLE:
        return f"Node {server.node.name!r} is {server.node.status.value}; stop was not sent."
    try:
        await send_command(
            db,
            broker,
            server.node,
            CommandType.SERVER_STOP,
            payload={"serverId": str(server.id)},
            ttl=settings.command_ttl,
            max_payload_bytes=settings.command_max_payload_bytes,
        )
    except PanelError as exc:
        log.warning("servers.suspend_stop_not_sent", server_id=str(server.id), error=str(exc))
        return f"The server is suspended but the stop was not sent: {exc.detail or exc}"
    return None


async def unsuspend_server(db: AsyncSession, principal: Principal, server: Server) -> None:
    """Lift a suspension (admins); the server stays stopped until someone starts it."""
    if not can_manage_any_server(principal):
        raise Forbidden("Only administrators may unsuspend servers.")
    server.suspended_at = None
    server.suspend_reason = None
    if server.status == ServerStatus.SUSPENDED:
        server.status = ServerStatus.OFFLINE
    await record(db, principal.actor, "server.unsuspend", "server", server.id)
