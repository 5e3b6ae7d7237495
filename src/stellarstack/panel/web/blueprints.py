"""Blueprint pages: the catalogue, and for admins import (eggs) and sync."""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.web.page_route import PageRoute

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
