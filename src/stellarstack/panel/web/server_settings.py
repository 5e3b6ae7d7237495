"""A server's Settings tab (`/servers/{id}/settings`): change it after deployment.

Name and description, resources, the blueprint's variables and the version all go through
`lifecycle.update_server`, exactly as `PATCH /api/v1/servers/{id}` does, so the page can do no
more than the API lets the same user do; refusals come back beside their fields with the
input kept. Reinstall goes through `power.request_reinstall`, suspend and unsuspend
(administrators) through `lifecycle`. Each form is a plain POST carrying the CSRF token; each
part needs its own permission (`server.settings`, `server.startup.update`, `server.update`,
`server.reinstall`), checked before anything is tried, so a subuser without it gets a 403.

Uses `servers._access` and `servers._principal` (private there) to resolve the caller's
standing on the server the same way every server page does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from stellarstack.blueprints import BlueprintError
from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.logs import get_logger
from stellarstack.panel.auth.permissions import ServerAccess
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.models import Server
from stellarstack.panel.deps import BrokerDep, CurrentPrincipal, DbSession, SettingsDep
from stellarstack.panel.domain.audit.service import audit_failures
from stellarstack.panel.domain.blueprints.service import find_blueprint, spec_of
from stellarstack.panel.domain.servers import power, service, views
from stellarstack.panel.domain.servers.schemas import ServerUpdate, SuspendRequest
from stellarstack.panel.errors import Conflict, Forbidden, PanelError
from stellarstack.panel.web.deploy_pages import rollback_keeping_user
from stellarstack.panel.web.deploy_wizard import (
    RESOURCE_FIELDS,
    VAR_PREFIX,
    DeployValues,
    VariableField,
    field_errors,
    parse_form,
    variable_fields,
    version_choices,
)
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.servers import _access, server_page
from stellarstack.panel.web.templating import render
from stellarstack.panel.web.urls import redirect

__all__ = ["Abilities", "SettingsValues", "router"]

log = get_logger(__name__)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_FORM_FIELDS = 300
FORM_FIELDS = ("name", "description", *RESOURCE_FIELDS, "version")
FORM_PERMISSIONS = {
    "general": "server.settings",
    "variables": "server.startup.update",
    "version": "server.update",
}
RESOURCES_NOTE = "New limits apply the next time the server (re)starts."
VARIABLES_NOTE = "Changed variables apply the next time the server (re)starts."
VERSION_NOTE = (
    "The version's image and settings apply at the next start or restart; games whose install "
    "script downloads the version (most Minecraft blueprints) need a reinstall to fetch it."
)


@dataclass(frozen=True, slots=True)
class Abilities:
    """Which parts of the settings page this user may change (and see)."""

    general: bool
    startup_read: bool
    startup_update: bool
    version: bool
    reinstall: bool
    suspend: bool

    @classmethod
    def of(cls, access: ServerAccess) -> Abilities:
        """The abilities that `access` grants on its server."""
        return cls(
            general=access.has("server.settings"),
            startup_read=access.has("server.startup.read") or access.has("server.startup.update"),
            startup_update=access.has("server.startup.update"),
            version=access.has("server.update"),
            reinstall=access.has("server.reinstall"),
            suspend=service.can_manage_any_server(access.principal),
        )


@dataclass
class SettingsValues:
    """What the forms show: the server's values, or what the user typed when refused."""

    name: str = ""
    description: str = ""
    memory_mb: str = ""
    cpu: str = ""
    disk_mb: str = ""
    version: str = ""
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, server: Server) -> SettingsValues:
        """The server's current settings as form values."""
        return cls(
            name=server.name,
            description=server.description or "",
            memory_mb=str(server.memory_mb),
            cpu=str(server.cpu_limit),
            disk_mb=str(server.disk_mb),
            version=server.version_tag or "",
            variables={v.key: v.value for v in server.variables},
        )


@dataclass
class Refusal:
    """A refused form: which one, the messages by field, one for the whole form, the status."""

    form: str
    errors: dict[str, str]
    general: str | None
    status: int


async def _page(
    request: Request,
    db: AsyncSession,
    access: ServerAccess,
    values: SettingsValues | None = None,
    refusal: Refusal | None = None,
) -> Response:
    server = access.server
    can = Abilities.of(access)
    values = values or SettingsValues.of(server)
    row = await find_blueprint(db, str(server.blueprint_id))
    variables: list[VariableField] = []
    blueprint_problem: str | None = None
    if row is not None and can.startup_read:
        try:
            variables = variable_fields(spec_of(row), values.variables)
        except BlueprintError as exc:
            blueprint_problem = f"The blueprint cannot be read ({exc}); ask an administrator."
    context = {
        "can": can,
        "values": values,
        "variables": variables,
        "versions": version_choices(row) if row is not None else [],
        "blueprint_problem": blueprint_problem,
        "refusal": refusal,
        "base_url": f"/servers/{server.identifier}/settings",
        "resources_note": RESOURCES_NOTE,
        "variables_note": VARIABLES_NOTE,
        "version_note": VERSION_NOTE,
    }
    user = access.principal.user
    status = refusal.status if refusal else 200
    return await server_page(
        request, user, server.identifier, "settings", "servers/settings.html",
        status_code=status, **context,
    )  # fmt: skip


async def _form(request: Request) -> list[tuple[str, str]]:
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _back(request: Request, server_ref: str, *flashes: Flash) -> Response:
    # `#top`: the page's top, where the flash is (the form's own anchor would carry over).
    response = redirect(request, f"/servers/{server_ref}/settings#top")
    set_flashes(response, request, *flashes)
    return response


Pairs = list[tuple[str, str]]
BodyOf = Callable[[Pairs, DeployValues, Server, SettingsValues], dict[str, object]]
"""Turns a posted form into a PATCH body, and copies what was typed into the kept values."""


def _general_body(
    pairs: Pairs, typed: DeployValues, server: Server, kept: SettingsValues
) -> dict[str, object]:
    """Name and description when changed, and the three resources."""
    form = dict(pairs)
    kept.name = form.get("name", "").strip()
    kept.description = form.get("description", "").strip()
    kept.memory_mb, kept.cpu, kept.disk_mb = typed.memory_mb, typed.cpu, typed.disk_mb
    body: dict[str, object] = {}
    if kept.name != server.name:
        body["name"] = kept.name
    if kept.description != (server.description or ""):
        body["description"] = kept.description or None
    for name in RESOURCE_FIELDS:
        body[name] = getattr(typed, name) or None
    return body


def _variables_body(
    pairs: Pairs, typed: DeployValues, server: Server, kept: SettingsValues
) -> dict[str, object]:
    """The editable variables whose value changed."""
    kept.variables.update(typed.variables)
    current = {v.key: v.value for v in server.variables}
    changed = {k: v for k, v in typed.variables.items() if current.get(k) != v}
    return {"variables": changed} if changed else {}


def _version_body(
    pairs: Pairs, typed: DeployValues, server: Server, kept: SettingsValues
) -> dict[str, object]:
    """The version, when another one was picked."""
    kept.version = typed.version
    return {"version": typed.version} if typed.version != (server.version_tag or "") else {}


def _spec(server: Server) -> BlueprintSpec:
    try:
        return spec_of(server.blueprint)
    except BlueprintError as exc:
        raise Conflict(
            f"The server's blueprint cannot be read ({exc}); ask an administrator to fix it."
        ) from exc


async def _apply(
    request: Request,
    db: AsyncSession,
    principal: Principal,
    server_id: str,
    form: str,
    body_of: BodyOf,
) -> Response:
    """Check the form's permission, apply its `ServerUpdate`, or show why not beside fields."""
    access = await _access(db, principal, server_id)
    views.require(access.permissions, FORM_PERMISSIONS[form])
    server = access.server
    pairs = await _form(request)
    kept = SettingsValues.of(server)
    spec = _spec(server)
    body = body_of(pairs, parse_form(pairs, spec), server, kept)
    if not body:
        return _back(request, server.identifier, Flash("Nothing to change.", "info"))
    try:
        updated = await service.update_server(
            db, principal, server, ServerUpdate.model_validate(body)
        )
    except (ValidationError, PanelError) as exc:
        await rollback_keeping_user(db, principal.user)
        errors, general = field_errors(exc)
        shown = (VAR_PREFIX + v.env for v in spec.variables if v.user_viewable)
        known = {*FORM_FIELDS, *shown}
        stray = [message for name, message in errors.items() if name not in known]
        general = "; ".join(filter(None, [general, *stray])) or None
        status = 422 if isinstance(exc, ValidationError) else exc.status
        fresh = await _access(db, principal, server_id)
        return await _page(request, db, fresh, kept, Refusal(form, errors, general, status))
    identifier = server.identifier
    await db.commit()
    log.info("web.server_settings.saved", server_id=str(server.id), form=form)
    flashes = [Flash("Settings saved.", "success")]
    if "version" in updated.changes:
        flashes = [Flash(f"Version set to {updated.changes['version']}. {VERSION_NOTE}", "success")]
    elif "variables" in updated.changes:
        flashes.append(Flash(VARIABLES_NOTE, "info"))
    elif "resources" in updated.changes:
        flashes.append(Flash(RESOURCES_NOTE, "info"))
    return _back(request, identifier, *flashes)


@router.get("/servers/{server_id}/settings")
async def settings_page(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """The Settings tab: what this user may change on the server, and the admin controls."""
    return await _page(request, db, await _access(db, principal, server_id))


@router.get("/servers/{server_id}/settings/status")
async def settings_status(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """The status badge of the reinstall card alone (htmx polls it, SSE nudges it)."""
    access = await _access(db, principal, server_id)
    return render(
        request, "servers/_settings_status.html", user=principal.user,
        server=views.server_out(access.server),
    )  # fmt: skip


@router.post("/servers/{server_id}/settings/general")
async def save_general(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """Rename, describe and resize the server (resources apply at the next (re)start)."""
    return await _apply(request, db, principal, server_id, "general", _general_body)


@router.post("/servers/{server_id}/settings/variables")
async def save_variables(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """Change the blueprint's editable variables, checked by their rules."""
    return await _apply(request, db, principal, server_id, "variables", _variables_body)


@router.post("/servers/{server_id}/settings/version")
async def save_version(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """Pick another of the blueprint's versions (applied at the next start)."""
    return await _apply(request, db, principal, server_id, "version", _version_body)


@router.post("/servers/{server_id}/settings/reinstall")
async def reinstall(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    server_id: str,
) -> Response:
    """Reinstall once confirmed: REINSTALLING, then back to how it was; refusals as a flash."""
    access = await _access(db, principal, server_id)
    views.require(access.permissions, "server.reinstall")
    identifier, name = access.server.identifier, access.server.name  # a commit expires rows
    if dict(await _form(request)).get("confirm") != "yes":
        return _back(request, identifier, Flash("Tick the box to confirm the reinstall.", "error"))
    # As for power actions: a refusal is rolled back and audited with these rows' ids;
    # detached (columns loaded), they stay readable instead of expiring.
    for row in (principal.user, access.server):
        if row in db:
            db.expunge(row)
    try:
        await power.request_reinstall(db, broker, settings, access)
    except PanelError as exc:
        await rollback_keeping_user(db, principal.user)
        return _back(request, identifier, Flash(exc.detail or "Not reinstalled.", "error"))
    message = f"Reinstalling {name}: its files are kept and the install runs again."
    return _back(request, identifier, Flash(message, "success"))


@router.post("/servers/{server_id}/settings/suspend")
async def suspend(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    broker: BrokerDep,
    settings: SettingsDep,
    server_id: str,
) -> Response:
    """Suspend the server and stop it (administrators), with a reason its users see."""
    access = await _access(db, principal, server_id)
    server = access.server
    identifier = server.identifier
    reason = dict(await _form(request)).get("reason", "").strip() or None
    try:
        body = SuspendRequest.model_validate({"reason": reason})
    except ValidationError:
        return _back(request, identifier, Flash("Keep the reason under 1024 characters.", "error"))
    database = request.app.state.database
    actor = principal.actor
    try:
        async with audit_failures(database, actor, "server.suspend", "server", server.id,
                                  session=db):  # fmt: skip
            warning = await service.suspend_server(
                db, broker, settings, principal, server, body.reason
            )
    except PanelError:
        # The audited refusal rolled back and expired the signed-in user the error page shows.
        await rollback_keeping_user(db, principal.user)
        raise
    flashes = [Flash(f"{server.name} is suspended and was asked to stop.", "success")]
    if warning:
        flashes.append(Flash(warning, "warning"))
    return _back(request, identifier, *flashes)


@router.post("/servers/{server_id}/settings/unsuspend")
async def unsuspend(
    request: Request, principal: CurrentPrincipal, db: DbSession, server_id: str
) -> Response:
    """Lift a suspension (administrators); the server stays stopped until started."""
    access = await _access(db, principal, server_id)
    if not service.can_manage_any_server(principal):
        raise Forbidden("Only administrators may unsuspend servers.")
    await service.unsuspend_server(db, principal, access.server)
    message = f"{access.server.name} is no longer suspended; start it when you are ready."
    return _back(request, access.server.identifier, Flash(message, "success"))
