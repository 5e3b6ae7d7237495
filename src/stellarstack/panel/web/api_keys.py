"""API key pages: create (token shown once), list, revoke — under the account settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from stellarstack.panel.auth.permissions import PLATFORM_PERMISSIONS, SERVER_PERMISSIONS
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ApiKeyKind
from stellarstack.panel.db.models import ApiKey
from stellarstack.panel.deps import DbSession, SessionPrincipal
from stellarstack.panel.domain.api_keys import service
from stellarstack.panel.errors import PanelError, ValidationFailed
from stellarstack.panel.web.account import SETTINGS_TABS, SettingsTab, render_settings
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.urls import redirect

__all__ = ["EXPIRY_CHOICES", "router"]

router = APIRouter(prefix="/settings/api-keys", route_class=PageRoute, include_in_schema=False)

PAGE = "/settings/api-keys"
SETTINGS_TABS.append(SettingsTab(PAGE, "API keys", "lock"))
# Days a new key lives; 0 means it never expires.
EXPIRY_CHOICES = {0: "Never", 30: "30 days", 90: "90 days", 365: "1 year"}


async def _page(
    request: Request,
    db: DbSession,
    principal: Principal,
    *,
    new_key: ApiKey | None = None,
    new_token: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    user = principal.user
    return render_settings(
        request,
        "settings/api_keys.html",
        user=user,
        keys=await service.list_keys(db, user),
        new_key=new_key,
        new_token=new_token,
        error=error,
        server_permissions=SERVER_PERMISSIONS,
        platform_permissions={
            name: label
            for name, label in PLATFORM_PERMISSIONS.items()
            if name in service.allowed_key_permissions(user, ApiKeyKind.APPLICATION)
        },
        expiry_choices=EXPIRY_CHOICES,
        status_code=status_code,
    )


@router.get("")
async def api_keys_page(request: Request, principal: SessionPrincipal, db: DbSession) -> Response:
    """Your API keys and the form to make one."""
    return await _page(request, db, principal)


def _error_text(exc: PanelError) -> str:
    if isinstance(exc, ValidationFailed) and exc.errors:
        return " ".join(e.message for e in exc.errors)
    return exc.detail or "The key could not be created."


@router.post("")
async def create_api_key(
    request: Request,
    principal: SessionPrincipal,
    db: DbSession,
    name: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=32)] = "client",
    permissions: Annotated[list[str] | None, Form(max_length=200)] = None,
    expires_in_days: Annotated[int, Form(ge=0, le=365)] = 0,
) -> Response:
    """Create a key and show its token on this one response."""
    try:
        key_kind = ApiKeyKind(kind)
    except ValueError:
        key_kind = ApiKeyKind.CLIENT
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    new = service.NewKey(name[:64], key_kind, permissions or [], expires)
    try:
        if not new.permissions:
            raise ValidationFailed([], "Tick at least one permission for the key.")
        key, token = await service.create_key(db, principal.user, new, actor=principal.actor)
    except PanelError as exc:
        return await _page(request, db, principal, error=_error_text(exc), status_code=exc.status)
    return await _page(request, db, principal, new_key=key, new_token=token, status_code=201)


@router.post("/{key_id}/revoke")
async def revoke_api_key(
    request: Request, key_id: uuid.UUID, principal: SessionPrincipal, db: DbSession
) -> Response:
    """Revoke a key and go back to the list."""
    key = await service.revoke_key(db, principal.user, key_id, actor=principal.actor)
    response = redirect(request, PAGE)
    set_flashes(response, request, Flash(f"Revoked the key “{key.name}”.", "success"))
    return response
