"""The deploy wizard (spec §8.1.1): choose a game, configure it, deploy, watch it come online.

1. `/servers/new`: the catalogue (blueprints in the database), searchable by name/category;
2. `/servers/new/{slug}`: name, version, resources, the blueprint's variables, node;
3. the form posts back to the same URL and goes through `deploy.create_server`, exactly as
   `POST /api/v1/servers` does; refusals come back next to their fields, input kept;
4. `/servers/{id}/deployment`: live progress (htmx polls `…/deployment/progress`);
5. the same page, once the server runs: "Your server is online — connect: ADDRESS:PORT".

Included by `web/servers.py` ahead of its `/servers/{server_id}` routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.models import Allocation, Blueprint, Deployment, User
from stellarstack.panel.deps import BrokerDep, CurrentPrincipal, DbSession, SettingsDep, client_ip
from stellarstack.panel.domain.blueprints import service as blueprints
from stellarstack.panel.domain.servers import placement, service
from stellarstack.panel.errors import NotFound, PanelError
from stellarstack.panel.web.deploy_progress import progress_view
from stellarstack.panel.web.deploy_wizard import (
    AUTO_NODE,
    DeployValues,
    default_values,
    field_errors,
    parse_form,
    to_server_create,
    variable_fields,
    version_choices,
)
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import redirect

__all__ = ["NodeChoice", "node_choices", "rollback_keeping_user", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CATALOGUE_LIMIT = 500
MAX_FORM_FIELDS = 300


@dataclass(frozen=True, slots=True)
class NodeChoice:
    """A node the user may deploy to, with what it has left."""

    id: str
    name: str
    region: str
    free_memory_mb: int | None
    free_ports: int


async def node_choices(db: AsyncSession, principal: Principal) -> list[NodeChoice]:
    """The nodes the user may pick (`service.deployable_nodes`) with free memory and ports."""
    nodes = await service.deployable_nodes(db, principal)
    rows = await db.execute(
        sa.select(Allocation.node_id, sa.func.count(Allocation.id))
        .where(Allocation.server_id.is_(None))
        .group_by(Allocation.node_id)
    )
    free = {node_id: int(count) for node_id, count in rows.all()}
    return [
        NodeChoice(
            id=str(load.node.id),
            name=load.node.name,
            region=load.node.region,
            free_memory_mb=load.free_memory_mb() if load.node.memory_mb > 0 else None,
            free_ports=int(free.get(load.node.id, 0)),
        )
        for load in await placement.node_loads(db, nodes)
    ]


async def rollback_keeping_user(db: AsyncSession, user: User) -> None:
    """Roll back a failed attempt and reload the signed-in user the rollback expired."""
    await db.rollback()
    if user in db:
        await db.refresh(user)


async def _blueprint(db: AsyncSession, slug: str) -> Blueprint:
    row = await blueprints.find_blueprint(db, slug)
    if row is None or not row.enabled:
        raise NotFound("There is no game with this name; pick one from the list.")
    return row


async def _configure(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    row: Blueprint,
    values: DeployValues,
    *,
    errors: dict[str, str] | None = None,
    general: str | None = None,
    status_code: int = 200,
) -> Response:
    spec = blueprints.spec_of(row)
    return render(
        request,
        "servers/deploy.html",
        user=principal.user,
        step=2,
        blueprint=row,
        definition=row.definition,
        versions=version_choices(row),
        variables=variable_fields(spec, values.variables),
        nodes=await node_choices(db, principal),
        values=values,
        auto_node=AUTO_NODE,
        errors=errors or {},
        general=general,
        status_code=status_code,
    )


@router.get("/servers/new")
async def choose_game(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    q: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Step 1: every game this panel can deploy, searchable by name and category."""
    rows, total = await blueprints.list_blueprints(
        db, search=q or None, category=category or None, limit=CATALOGUE_LIMIT
    )
    return render(
        request, "servers/deploy.html", user=principal.user, step=1, games=rows, total=total,
        categories=await blueprints.count_by_category(db), q=q or "", category=category or "",
    )  # fmt: skip


@router.get("/servers/new/{slug}")
async def configure(
    request: Request, principal: CurrentPrincipal, db: DbSession, slug: str
) -> Response:
    """Step 2: name, version, resources, variables and node, with the blueprint's defaults."""
    row = await _blueprint(db, slug)
    return await _configure(
        request, db, principal, row, default_values(row, blueprints.spec_of(row))
    )


@router.post("/servers/new/{slug}")
async def deploy_server(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    slug: str,
) -> Response:
    """Step 3: deploy through the servers service; refusals come back beside their fields."""
    row = await _blueprint(db, slug)
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    values = parse_form(pairs, blueprints.spec_of(row))
    try:
        body = to_server_create(row.slug, values)
        server, _deployment = await service.create_server(
            db, broker, settings, principal, body, ip=client_ip(request)
        )
    except (ValidationError, PanelError) as exc:
        await rollback_keeping_user(db, principal.user)
        errors, general = field_errors(exc)
        known = {"name", "version", "memory_mb", "cpu", "disk_mb", "node"} | {
            "var." + key for key in values.variables
        }
        stray = [message for name, message in errors.items() if name not in known]
        general = "; ".join(filter(None, [general, *stray])) or None
        status = 422 if isinstance(exc, ValidationError) else exc.status
        row = await _blueprint(db, slug)
        return await _configure(
            request, db, principal, row, values, errors=errors, general=general,
            status_code=status,
        )  # fmt: skip
    return redirect(request, f"/servers/{server.identifier}/deployment")


async def _latest_deployment(db: AsyncSession, server_id: Any) -> Deployment | None:
    found: Deployment | None = await db.scalar(
        sa.select(Deployment)
        .where(Deployment.server_id == server_id)
        .order_by(Deployment.created_at.desc(), Deployment.id)
        .limit(1)
    )
    return found


async def _progress_context(
    db: AsyncSession, principal: Principal, server_id: str
) -> dict[str, Any]:
    server = await service.get_server(db, principal, server_id[:64])
    deployment = await _latest_deployment(db, server.id)
    return {
        "server": service.server_out(server),
        "progress": progress_view(deployment, server),
        "deployment": deployment,
    }


@router.get("/servers/{server_id}/deployment")
async def deployment_page(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """Steps 4-5: the deployment's live progress, then the address to connect to."""
    context = await _progress_context(db, principal, server_id)
    return render(request, "servers/deploy.html", user=principal.user, step=4, **context)


@router.get("/servers/{server_id}/deployment/progress")
async def deployment_progress(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """The progress fragment alone (htmx polls it until the deployment is over)."""
    context = await _progress_context(db, principal, server_id)
    return render(request, "servers/_deploy_progress.html", user=principal.user, **context)
