"""`/api/v1/servers`: deploy, list, read, change, delete and suspend servers (spec §14.3).

Thin: each route resolves the caller's access and hands over to `servers.service`. A server
the caller cannot see answers 404 whatever the route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from stellarstack.panel.auth.permissions import ServerAccess, require_server_permission
from stellarstack.panel.db.session import Database
from stellarstack.panel.deps import (
    BrokerDep,
    CurrentPrincipal,
    DbSession,
    PageQuery,
    SettingsDep,
    client_ip,
    get_database,
)
from stellarstack.panel.domain.audit.service import audit_failures
from stellarstack.panel.domain.servers import service
from stellarstack.panel.domain.servers.schemas import (
    DeploymentOut,
    ServerCreate,
    ServerCreated,
    ServerOut,
    ServerUpdate,
    SuspendRequest,
)
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/servers", tags=["servers"])

ServerRef = Annotated[str, Path(max_length=64, description="Server id or identifier.")]
Viewer = Annotated[ServerAccess, Depends(require_server_permission("server.view"))]
Deleter = Annotated[ServerAccess, Depends(require_server_permission("server.delete"))]
DatabaseDep = Annotated[Database, Depends(get_database)]


@router.post("", status_code=202)
async def create_server(
    request: Request,
    body: ServerCreate,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    database: DatabaseDep,
) -> Envelope[ServerCreated]:
    """Deploy a blueprint; the server installs in the background (follow its deployment)."""
    async with audit_failures(database, principal.actor, "server.create", "server", session=db):
        server, deployment = await service.create_server(
            db, broker, settings, principal, body, ip=client_ip(request)
        )
    loaded = await service.load_server(db, server.id)
    assert loaded is not None
    return ok(
        ServerCreated(
            server=service.server_out(loaded), deployment=DeploymentOut.model_validate(deployment)
        )
    )


@router.get("")
async def list_servers(
    principal: CurrentPrincipal,
    db: DbSession,
    page: PageQuery,
    search: Annotated[str | None, Query(max_length=100)] = None,
) -> Envelope[list[ServerOut]]:
    """The caller's servers and those shared with them (staff: every server)."""
    servers, total = await service.list_servers(
        db, principal, search=search, offset=page.offset, limit=page.per_page
    )
    return ok([service.server_out(s) for s in servers], page.meta(total))


@router.get("/{server_id}")
async def get_server(
    server_id: ServerRef, access: Viewer, principal: CurrentPrincipal, db: DbSession
) -> Envelope[ServerOut]:
    """One server by id or identifier."""
    return ok(service.server_out(await service.get_server(db, principal, access.server.id)))


@router.get("/{server_id}/deployments")
async def list_deployments(access: Viewer, db: DbSession) -> Envelope[list[DeploymentOut]]:
    """A server's installs and reinstalls, newest first."""
    return ok(await service.list_deployments(db, access.server))


@router.patch("/{server_id}")
async def update_server(
    body: ServerUpdate, access: Viewer, principal: CurrentPrincipal, db: DbSession
) -> Envelope[ServerOut]:
    """Change name, description, resources, variables or version (the last three at restart)."""
    server = await service.get_server(db, principal, access.server.id)
    updated = await service.update_server(db, principal, server, body)
    meta: dict[str, object] = {"restartRequired": updated.restart_required}
    if updated.restart_required:
        meta["note"] = service.RESTART_NOTE
    return ok(service.server_out(server), meta)


@router.delete("/{server_id}")
async def delete_server(
    access: Deleter,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    database: DatabaseDep,
    force: bool = False,
) -> Envelope[dict[str, object]]:
    """Delete a server on its node, then here (its ports become free); admins may force."""
    server = await service.get_server(db, principal, access.server.id, "server.delete")
    actor = principal.actor
    async with audit_failures(database, actor, "server.delete", "server", server.id, session=db):
        warning = await service.delete_server(
            db, database, broker, settings, principal, server, force=force
        )
    return ok({"deleted": True, "warning": warning})


@router.post("/{server_id}/suspend")
async def suspend_server(
    access: Viewer,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    database: DatabaseDep,
    body: SuspendRequest | None = None,
) -> Envelope[ServerOut]:
    """Suspend a server and stop it (administrators)."""
    server = await service.get_server(db, principal, access.server.id)
    reason = body.reason if body else None
    actor = principal.actor
    async with audit_failures(database, actor, "server.suspend", "server", server.id, session=db):
        warning = await service.suspend_server(db, broker, settings, principal, server, reason)
    return ok(service.server_out(server), {"warning": warning} if warning else None)


@router.post("/{server_id}/unsuspend")
async def unsuspend_server(
    access: Viewer, principal: CurrentPrincipal, db: DbSession
) -> Envelope[ServerOut]:
    """Lift a suspension (administrators); the server stays stopped."""
    server = await service.get_server(db, principal, access.server.id)
    await service.unsuspend_server(db, principal, server)
    return ok(service.server_out(server))
