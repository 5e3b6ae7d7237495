"""Security pages: the 2FA challenge at sign-in, 2FA settings, OAuth sign-in and linking."""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.web.page_route import PageRoute

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)
