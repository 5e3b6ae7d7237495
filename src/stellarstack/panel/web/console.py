"""The server console page (`/servers/{id}/console`): xterm.js fed by the node's WebSocket.

The page itself carries no secret: `static_src/js/console.js` asks
`/api/v1/servers/{id}/console-token` for a token and the node's socket URL, then talks to the
daemon directly (docs/console-protocol.md).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.responses import Response

from stellarstack.panel.auth.permissions import find_server, server_permissions
from stellarstack.panel.deps import CurrentPrincipal, DbSession
from stellarstack.panel.errors import Forbidden, NotFound
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.servers import server_page

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SERVER_REF = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@router.get("/servers/{server_id}/console")
async def server_console(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """One server's live console (404 for servers the user cannot see, 403 without console)."""
    server = await find_server(db, server_id) if SERVER_REF.match(server_id) else None
    held = await server_permissions(db, principal, server) if server is not None else None
    if held is None:
        raise NotFound("There is no server with this id.")
    if "server.console" not in held:
        raise Forbidden("You do not have the server.console permission on this server.")
    return await server_page(request, principal.user, server_id, "console", "servers/console.html")
