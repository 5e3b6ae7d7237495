"""Server pages: the server list, the deploy wizard, one server's overview (power, status).

Placeholder until the servers work fills it.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser
from stellarstack.panel.errors import NotFound
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import render

__all__ = ["SERVER_TABS", "router", "server_page"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SERVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SERVER_TABS = ("overview", "console", "files")


async def server_page(
    request: Request, user: User, server_id: str, tab: str, template: str = "servers/detail.html"
) -> Response:
    """Render one tab of a server's pages."""
    if not SERVER_ID.match(server_id):
        raise NotFound("There is no server with this id.")
    return render(request, template, user=user, server_id=server_id, tab=tab, tabs=SERVER_TABS)


@router.get("/servers")
async def server_list(request: Request, user: CurrentUser) -> Response:
    """The servers this user can reach."""
    return render(request, "servers/list.html", user=user)


@router.get("/servers/{server_id}")
async def server_detail(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's overview."""
    return await server_page(request, user, server_id, "overview")


@router.get("/servers/{server_id}/files")
async def server_files(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's file manager."""
    return await server_page(request, user, server_id, "files")
