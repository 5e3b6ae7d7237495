"""Node pages: the node list with live status, adding a node, node detail with live metrics."""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.web.page_route import PageRoute

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
