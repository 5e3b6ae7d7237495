"""The browser-facing panel: Jinja2 + htmx pages, flash messages and the static assets.

The app factory wires it in with::

    app.include_router(web.router)
    web.mount_static(app)
    web.install_error_pages(app)   # after the JSON error handlers
"""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.web import (
    account,
    admin,
    api_keys,
    blueprints,
    console,
    nodes,
    routes,
    security,
    server_settings,
    servers,
    signin,
)
from stellarstack.panel.web.assets import mount_static
from stellarstack.panel.web.error_pages import install_error_pages
from stellarstack.panel.web.templating import templates

__all__ = ["install_error_pages", "mount_static", "router", "templates"]

router = APIRouter(include_in_schema=False)
router.include_router(signin.router)
for _pages in (
    account,
    security,
    api_keys,
    admin,
    nodes,
    blueprints,
    console,
    server_settings,
    servers,
):
    router.include_router(_pages.router)
router.include_router(routes.router)
