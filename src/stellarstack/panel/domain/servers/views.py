"""Reading servers as their viewers may: look-ups by id or identifier, lists, API shapes.

A server the caller cannot see is reported as missing (404), never as forbidden, so ids of
other people's servers cannot be probed. Staff roles see every server; everyone else sees the
servers they own and those shared with them as a subuser.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from stellarstack.panel.auth.permissions import ROLE_SERVER_PERMISSIONS, server_permissions
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ServerStatus
from stellarstack.panel.db.models import Deployment, Server, Subuser
from stellarstack.panel.domain.servers.schemas import AddressOut, DeploymentOut, ServerOut
from stellarstack.panel.errors import Forbidden, NotFound

__all__ = [
    "count_running",
    "get_server",
    "list_deployments",
    "list_servers",
    "load_server",
    "require",
    "sees_every_server",
    "server_out",
]

MAX_SEARCH = 100
_LOADED = (
    selectinload(Server.node),
    selectinload(Server.blueprint),
    selectinload(Server.allocations),
    selectinload(Server.variables),
)


def _condition(ref: str) -> sa.ColumnElement[bool] | None:
    if not ref or len(ref) > 64:
        return None
    try:
        return Server.id == uuid.UUID(ref)
    except ValueError:
        return Server.identifier == ref.lower()


async def load_server(db: AsyncSession, ref: str | uuid.UUID) -> Server | None:
    """A server by UUID or identifier with node, blueprint, ports and variables loaded."""
    condition = Server.id == ref if isinstance(ref, uuid.UUID) else _condition(ref)
    if condition is None:
        return None
    query = (
        sa.select(Server)
        .options(*_LOADED)
        .where(condition)
        .execution_options(populate_existing=True)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def get_server(
    db: AsyncSession, principal: Principal, ref: str | uuid.UUID, permission: str = "server.view"
) -> Server:
    """A server the caller holds `permission` on: 404 when invisible, 403 when merely lacking."""
    server = await load_server(db, ref)
    held = await server_permissions(db, principal, server) if server is not None else None
    if server is None or held is None:
        raise NotFound("There is no server with this id.")
    require(held, permission)
    return server


def require(held: frozenset[str], permission: str) -> None:
    """403 unless `permission` is among `held`."""
    if permission not in held:
        raise Forbidden(f"You do not have the {permission} permission on this server.")


def sees_every_server(principal: Principal) -> bool:
    """Whether the caller's role (and key) lets them see every server."""
    granted = ROLE_SERVER_PERMISSIONS.get(principal.user.role, frozenset())
    scope = principal.key_permissions
    return "server.view" in granted and (scope is None or "server.view" in scope)


def _escaped(text: str) -> str:
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible(query: sa.Select[Any], principal: Principal) -> sa.Select[Any]:
    """`query` narrowed to the servers the caller can see (staff see every server)."""
    if sees_every_server(principal):
        return query
    shared = sa.select(Subuser.server_id).where(Subuser.user_id == principal.user.id)
    return query.where(sa.or_(Server.owner_id == principal.user.id, Server.id.in_(shared)))


async def count_running(db: AsyncSession, principal: Principal) -> int:
    """How many of the servers the caller can see are RUNNING."""
    query = sa.select(sa.func.count()).select_from(Server)
    query = _visible(query.where(Server.status == ServerStatus.RUNNING), principal)
    return int(await db.scalar(query) or 0)


async def list_servers(
    db: AsyncSession,
    principal: Principal,
    *,
    search: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Server], int]:
    """The servers the caller can see, by name, filtered by a search text; and the total."""
    query = _visible(sa.select(Server), principal)
    if search:
        pattern = f"%{_escaped(search[:MAX_SEARCH])}%"
        query = query.where(
            sa.or_(
                sa.func.lower(Server.name).like(pattern, escape="\\"),
                sa.func.lower(Server.identifier).like(pattern, escape="\\"),
            )
        )
    total = await db.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = await db.execute(
        query.options(*_LOADED).order_by(Server.name, Server.id).offset(offset).limit(limit)
    )
    return list(rows.scalars()), int(total or 0)


def server_out(server: Server) -> ServerOut:
    """The API view of a loaded server (see `load_server`)."""
    ordered = sorted(server.allocations, key=lambda a: (not a.is_primary, a.ip, a.port))
    addresses = [
        AddressOut(
            id=a.id,
            ip=a.ip,
            port=a.port,
            protocol=a.protocol.value,
            alias=a.ip_alias,
            primary=a.is_primary,
        )
        for a in ordered
    ]
    primary = addresses[0] if addresses else None
    return ServerOut(
        id=server.id,
        identifier=server.identifier,
        name=server.name,
        description=server.description,
        status=server.status,
        owner_id=server.owner_id,
        node_id=server.node_id,
        node_name=server.node.name if server.node else None,
        blueprint_id=server.blueprint_id,
        blueprint_slug=server.blueprint.slug if server.blueprint else None,
        blueprint_name=server.blueprint.name if server.blueprint else None,
        version_tag=server.version_tag,
        memory_mb=server.memory_mb,
        cpu=server.cpu_limit,
        disk_mb=server.disk_mb,
        address=f"{primary.alias or primary.ip}:{primary.port}" if primary else None,
        allocations=addresses,
        suspended=server.status == ServerStatus.SUSPENDED or server.suspended_at is not None,
        suspend_reason=server.suspend_reason,
        install_error=server.install_error,
        crash_count=server.crash_count,
        last_crash_at=server.last_crash_at,
        installed_at=server.installed_at,
        created_at=server.created_at,
        updated_at=server.updated_at,
    )


async def list_deployments(db: AsyncSession, server: Server) -> list[DeploymentOut]:
    """A server's deployments, newest first."""
    rows = await db.execute(
        sa.select(Deployment)
        .where(Deployment.server_id == server.id)
        .order_by(Deployment.created_at.desc(), Deployment.id)
    )
    return [DeploymentOut.model_validate(d) for d in rows.scalars()]
