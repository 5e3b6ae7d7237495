"""The server console page (xterm.js): placeholder until the console work fills it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from stellarstack.panel.deps import CurrentUser
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.servers import server_page

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/servers/{server_id}/console")
async def server_console(request: Request, user: CurrentUser, server_id: str) -> Response:
    """One server's live console."""
    return await server_page(request, user, server_id, "console", "servers/console.html")
