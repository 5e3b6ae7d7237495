"""Admin pages: users (list, detail, role, suspension) and the audit log."""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.web.page_route import PageRoute

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
