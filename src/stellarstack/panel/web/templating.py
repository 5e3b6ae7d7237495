"""Rendering pages: the Jinja2 environment (autoescaped) and the context every page gets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.web.assets import asset_build
from stellarstack.panel.web.flash import FLASH_COOKIE, clear_flashes, read_flashes

__all__ = ["ADMIN_ROLES", "NavItem", "is_admin", "navigation", "render", "templates"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
ROLE_LABELS = {
    Role.USER: "User",
    Role.SUPPORT: "Support",
    Role.MODERATOR: "Moderator",
    Role.ADMIN: "Admin",
    Role.SUPER_ADMIN: "Super admin",
}
# Scripts only from our own origin (no inline code); the console connects to daemons over
# WebSocket/HTTPS on other hosts, hence the wider connect-src.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self' ws: wss: https:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


@dataclass(frozen=True, slots=True)
class NavItem:
    """One link of the sidebar."""

    href: str
    label: str
    icon: str
    active: bool


def is_admin(user: User | None) -> bool:
    """Whether a user may see the admin pages."""
    return user is not None and user.role in ADMIN_ROLES


def navigation(request: Request, user: User | None) -> list[NavItem]:
    """The sidebar for this user, with the current section marked."""
    items = [("/dashboard", "Dashboard", "home"), ("/servers", "Servers", "server")]
    if is_admin(user):
        items += [("/nodes", "Nodes", "node"), ("/admin", "Admin", "shield")]
    items.append(("/settings", "Settings", "settings"))
    path = request.url.path
    return [
        NavItem(href, label, icon, path == href or path.startswith(href + "/"))
        for href, label, icon in items
    ]


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the layout's context: user, navigation, flashes, asset URLs."""
    user: User | None = context.pop("user", getattr(request.state, "user", None))
    build = asset_build(request)
    flashes = read_flashes(request)
    page_context: dict[str, Any] = {
        "user": user,
        "user_role": ROLE_LABELS.get(user.role, str(user.role)) if user else "",
        "is_admin": is_admin(user),
        "nav": navigation(request, user) if user else [],
        "flashes": flashes,
        "assets": build,
        "static_url": lambda path: build.url(request, path),
        **context,
    }
    response = templates.TemplateResponse(request, name, page_context, status_code=status_code)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if user is not None:
        response.headers["Cache-Control"] = "no-store"
    if FLASH_COOKIE in request.cookies:
        clear_flashes(response)
    return response
