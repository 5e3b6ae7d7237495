"""Server pages: the server list, one server's overview (power, live status), delete.

Pages call the same services as `/api/v1/servers` (`domain/servers`), so a page can do no
more than the API lets the same user do. Live parts are htmx fragments polled every few
seconds (`/servers/rows`, `/servers/{id}/status`); the deploy wizard is `web/deploy_pages.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from stellarstack.panel.auth.permissions import ServerAccess, server_permissions
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ServerStatus
from stellarstack.panel.db.models import Server, User
from stellarstack.panel.deps import BrokerDep, CurrentPrincipal, CurrentUser, DbSession, SettingsDep
from stellarstack.panel.domain.servers import power, service, views
from stellarstack.panel.domain.servers.schemas import PowerAction
from stellarstack.panel.errors import NotFound, PanelError
from stellarstack.panel.web import deploy_pages
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import redirect

__all__ = ["POWER_BUTTONS", "SERVER_TABS", "router", "server_page"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
# The wizard's `/servers/new…` routes must match before `/servers/{server_id}`.
router.include_router(deploy_pages.router)

SERVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVER_TABS = ("overview", "console", "files", "settings")
LIST_LIMIT = 200

# (action, label, statuses in which the button is enabled)
POWER_BUTTONS: tuple[tuple[PowerAction, str, frozenset[ServerStatus]], ...] = (
    ("start", "Start", frozenset({ServerStatus.OFFLINE, ServerStatus.CRASHED})),
    ("restart", "Restart", frozenset({ServerStatus.RUNNING, ServerStatus.STARTING})),
    ("stop", "Stop", frozenset({ServerStatus.RUNNING, ServerStatus.STARTING})),
    (
        "kill",
        "Kill",
        frozenset({ServerStatus.RUNNING, ServerStatus.STARTING, ServerStatus.STOPPING}),
    ),
)
POWER_ACTIONS: dict[str, PowerAction] = {action: action for action, _, _ in POWER_BUTTONS}


def _principal(request: Request, user: User) -> Principal:
    # Pages are for browser sessions only (API keys never reach page routes).
    session = getattr(request.state, "session", None)
    return Principal(user, "session", session=session, ip=request.client and request.client.host)


async def _access(db: AsyncSession, principal: Principal, server_id: str) -> ServerAccess:
    if not SERVER_ID.match(server_id):
        raise NotFound("There is no server with this id.")
    server = await views.load_server(db, server_id)
    held = await server_permissions(db, principal, server) if server is not None else None
    if server is None or held is None:
        raise NotFound("There is no server with this id.")
    views.require(held, "server.view")
    return ServerAccess(principal, server, held, server.owner_id == principal.user.id)


def power_buttons(access: ServerAccess) -> list[dict[str, Any]]:
    """The power buttons this user sees (by permission), each enabled by the server's status."""
    server = access.server
    blocked = server.suspended_at is not None or server.status == ServerStatus.SUSPENDED
    return [
        {"action": action, "label": label, "enabled": not blocked and server.status in when}
        for action, label, when in POWER_BUTTONS
        if access.has(f"server.power.{action}")
    ]


async def _tab_context(db: AsyncSession, access: ServerAccess) -> dict[str, Any]:
    server = access.server
    deployments = await views.list_deployments(db, server)
    return {
        "server": views.server_out(server),
        "access": access,
        "buttons": power_buttons(access),
        "deployment": deployments[0] if deployments else None,
        "can_delete": access.has("server.delete"),
        "can_force": service.can_manage_any_server(access.principal),
    }


async def server_page(
    request: Request,
    user: User,
    server_id: str,
    tab: str,
    template: str = "servers/detail.html",
    **context: Any,
) -> Response:
    """Render one tab of a server's pages (404 for servers the user cannot see)."""
    async with request.app.state.database.sessionmaker() as db:
        access = await _access(db, _principal(request, user), server_id)
        base = await _tab_context(db, access)
    return render(
        request, template, user=user, server_id=server_id, tab=tab, tabs=SERVER_TABS,
        **base, **context,
    )  # fmt: skip


@router.get("/servers")
async def server_list(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The servers this user can reach, with live status."""
    rows, total = await views.list_servers(db, principal, search=q or None, limit=LIST_LIMIT)
    servers = [views.server_out(s) for s in rows]
    return render(
        request, "servers/list.html", user=principal.user, servers=servers, total=total, q=q or ""
    )


@router.get("/servers/rows")
async def server_rows(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The server table's rows alone (htmx polls this for live status)."""
    rows, _ = await views.list_servers(db, principal, search=q or None, limit=LIST_LIMIT)
    servers = [views.server_out(s) for s in rows]
    return render(request, "servers/_rows.html", user=principal.user, servers=servers)


@router.get("/servers/{server_id}")
async def server_detail(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's overview: status, power, address, resources, latest deployment."""
    return await server_page(request, user, server_id, "overview")


@router.get("/servers/{server_id}/status")
async def server_status(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """The overview's live part alone: status badge, power buttons, address (htmx polls it)."""
    access = await _access(db, principal, server_id)
    context = await _tab_context(db, access)
    return render(request, "servers/_overview_status.html", user=principal.user, **context)


@router.post("/servers/{server_id}/power/{action}")
async def server_power(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    server_id: str,
    action: str,
) -> Response:
    """Start, stop, restart or kill through the power service; refusals become a flash."""
    access = await _access(db, principal, server_id)
    wanted = POWER_ACTIONS.get(action)
    if wanted is None:
        raise NotFound("There is no such power action.")
    views.require(access.permissions, f"server.power.{wanted}")
    identifier, name = access.server.identifier, access.server.name  # the commit expires rows
    # The power service rolls a refusal back and then audits it with the user's and the
    # server's ids: detached (columns loaded), they stay readable instead of expiring.
    for row in (principal.user, access.server):
        if row in db:
            db.expunge(row)
    flash: Flash
    try:
        await power.request_power(db, broker, settings, access, wanted)
    except PanelError as exc:
        await deploy_pages.rollback_keeping_user(db, principal.user)
        flash = Flash(exc.detail or "The server did not accept that.", "error")
    else:
        flash = Flash(f"{wanted.capitalize()} sent to {name}.", "success")
    if request.headers.get("hx-request") == "true":
        fresh = await _access(db, principal, identifier)
        context = await _tab_context(db, fresh)
        # 200 even for a refusal: htmx swaps only 2xx, and the refusal is in the notice.
        return render(
            request, "servers/_overview_status.html", user=principal.user, notice=flash, **context
        )
    response = redirect(request, f"/servers/{identifier}")
    set_flashes(response, request, flash)
    return response


@router.post("/servers/{server_id}/delete")
async def server_delete(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    server_id: str,
    confirm: Annotated[str, Form(max_length=256)] = "",
    force: Annotated[bool, Form()] = False,
) -> Response:
    """Delete a server once its name was typed to confirm (owner or admin; admins may force)."""
    access = await _access(db, principal, server_id)
    views.require(access.permissions, "server.delete")
    server: Server = access.server
    back = redirect(request, f"/servers/{server.identifier}")
    if confirm.strip() != server.name:
        set_flashes(back, request, Flash("Type the server's name exactly to delete it.", "error"))
        return back
    name = server.name
    database = request.app.state.database
    try:
        warning = await service.delete_server(
            db, database, broker, settings, principal, server, force=force
        )
    except PanelError as exc:
        await deploy_pages.rollback_keeping_user(db, principal.user)
        set_flashes(back, request, Flash(exc.detail or "The server was not deleted.", "error"))
        return back
    response = redirect(request, "/servers")
    flashes = [Flash(f"Server {name} was deleted.", "success")]
    if warning:
        flashes.append(Flash(warning, "warning"))
    set_flashes(response, request, *flashes)
    return response


@router.get("/servers/{server_id}/files")
async def server_files(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's file manager."""
    return await server_page(request, user, server_id, "files")
