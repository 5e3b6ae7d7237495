"""Page routes of the signed-in panel: dashboard, servers, nodes, settings, admin."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, OptionalUser
from stellarstack.panel.errors import Forbidden, NotFound
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import is_admin, render

__all__ = ["AdminUser", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SERVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVER_TABS = ("overview", "console", "files")


async def require_admin(user: CurrentUser) -> User:
    """The signed-in user when they are an admin; 403 otherwise."""
    if not is_admin(user):
        raise Forbidden("Only administrators can open this page.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


@router.get("/")
async def landing(request: Request, user: OptionalUser) -> Response:
    """What StellarStack is, and the way in."""
    return render(request, "landing.html", user=user)


@router.get("/dashboard")
async def dashboard(request: Request, user: CurrentUser) -> Response:
    """The signed-in user's overview."""
    return render(request, "dashboard.html", user=user)


@router.get("/servers")
async def server_list(request: Request, user: CurrentUser) -> Response:
    """The servers this user can reach."""
    return render(request, "servers/list.html", user=user)


async def _server_page(request: Request, user: User, server_id: str, tab: str) -> Response:
    if not SERVER_ID.match(server_id):
        raise NotFound("There is no server with this id.")
    return render(
        request, "servers/detail.html", user=user, server_id=server_id, tab=tab, tabs=SERVER_TABS
    )


@router.get("/servers/{server_id}")
async def server_detail(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's overview."""
    return await _server_page(request, user, server_id, "overview")


@router.get("/servers/{server_id}/console")
async def server_console(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's live console."""
    return await _server_page(request, user, server_id, "console")


@router.get("/servers/{server_id}/files")
async def server_files(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's file manager."""
    return await _server_page(request, user, server_id, "files")
