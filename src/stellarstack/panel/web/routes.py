"""Page routes of the signed-in panel: dashboard, servers, nodes, settings, admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentPrincipal, CurrentUser, DbSession, OptionalUser
from stellarstack.panel.domain.servers import views
from stellarstack.panel.errors import Forbidden
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import is_admin, render

__all__ = ["AdminUser", "router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


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


DASHBOARD_SERVERS = 8


@router.get("/dashboard")
async def dashboard(request: Request, principal: CurrentPrincipal, db: DbSession) -> Response:
    """The signed-in user's overview: their servers, how many run, the first few with status."""
    rows, total = await views.list_servers(db, principal, limit=DASHBOARD_SERVERS)
    running = await views.count_running(db, principal)
    return render(
        request,
        "dashboard.html",
        user=principal.user,
        servers=[views.server_out(s) for s in rows],
        total=total,
        running=running,
    )
