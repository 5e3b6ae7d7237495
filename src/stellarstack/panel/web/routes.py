"""Page routes of the signed-in panel: dashboard, servers, nodes, settings, admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, OptionalUser
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


@router.get("/dashboard")
async def dashboard(request: Request, user: CurrentUser) -> Response:
    """The signed-in user's overview."""
    return render(request, "dashboard.html", user=user)
