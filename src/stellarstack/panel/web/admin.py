"""Admin pages: the overview, users (list, detail, role, suspension) and the audit log.

Staff see these by platform permission (support reads, moderators suspend, admins edit);
the forms post back here and redirect with a flash, so a reload never repeats an action.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from stellarstack.panel.auth.permissions import platform_permissions, require_permission
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import AuditStatus, Role
from stellarstack.panel.db.session import Database
from stellarstack.panel.deps import AnyPrincipal, DbSession, PageQuery, PageRequest, get_database
from stellarstack.panel.domain.admin_users import service
from stellarstack.panel.domain.admin_users.stats import platform_stats
from stellarstack.panel.domain.audit.query import AuditFilter, list_entries
from stellarstack.panel.domain.audit.service import audit_failures
from stellarstack.panel.errors import Forbidden, PanelError
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import ROLE_LABELS, render
from stellarstack.panel.web.urls import redirect

__all__ = ["STAFF_ONLY", "router", "staff_page"]

router = APIRouter(prefix="/admin", route_class=PageRoute, include_in_schema=False)

STAFF_ONLY = "Only administrators can open this page."


def staff_page(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """`require_permission` for pages: people without any staff role get a plain refusal."""
    check = require_permission(permission)

    async def guard(principal: AnyPrincipal) -> Principal:
        if not platform_permissions(principal.user.role):
            raise Forbidden(STAFF_ONLY)
        return await check(principal)

    return guard


StatsViewer = Annotated[Principal, Depends(staff_page("platform.stats"))]
Viewer = Annotated[Principal, Depends(staff_page("user.view"))]
Editor = Annotated[Principal, Depends(staff_page("user.update"))]
Suspender = Annotated[Principal, Depends(staff_page("user.suspend"))]
Auditor = Annotated[Principal, Depends(staff_page("audit.view"))]
DatabaseDep = Annotated[Database, Depends(get_database)]
Search = Annotated[str, Query(max_length=100)]
HISTORY_LENGTH = 10


@router.get("")
async def overview(request: Request, principal: StatsViewer, db: DbSession) -> Response:
    """The administration overview: counts and the way to each section."""
    return render(request, "admin/index.html", user=principal.user, stats=await platform_stats(db))


@router.get("/users")
async def users_page(
    request: Request, principal: Viewer, db: DbSession, page: PageQuery, search: Search = ""
) -> Response:
    """Every account, searchable by email or name."""
    users, total = await service.list_users(db, service.UserFilter(search or None), page)
    return render(
        request,
        "admin/users.html",
        user=principal.user,
        users=users,
        search=search,
        pagination=page.meta(total)["pagination"],
        role_labels=ROLE_LABELS,
    )


@router.get("/users/{user_id}")
async def user_page(
    request: Request, user_id: uuid.UUID, principal: Viewer, db: DbSession
) -> Response:
    """One account: its role, suspension and what hangs off it, with the actions allowed."""
    target = await service.get_user(db, user_id)
    held = platform_permissions(principal.user.role)
    about = AuditFilter(resource="user", resource_id=str(user_id))
    entries, _ = await list_entries(db, about, PageRequest(1, HISTORY_LENGTH))
    return render(
        request,
        "admin/user.html",
        user=principal.user,
        target=target,
        counts=await service.user_counts(db, target),
        can_edit="user.update" in held,
        can_suspend="user.suspend" in held,
        roles=list(Role),
        role_labels=ROLE_LABELS,
        history=entries,
    )


def _back(request: Request, user_id: uuid.UUID, flash: Flash) -> Response:
    response = redirect(request, f"/admin/users/{user_id}")
    set_flashes(response, request, flash)
    return response


@router.post("/users/{user_id}/role")
async def change_role(
    request: Request,
    user_id: uuid.UUID,
    principal: Editor,
    db: DbSession,
    database: DatabaseDep,
    role: Annotated[Role, Form()],
) -> Response:
    """Give an account another role."""
    target = await service.get_user(db, user_id)
    try:
        async with audit_failures(
            database, principal.actor, "user.update", "user", user_id, session=db
        ):
            await service.update_user(db, principal, target, service.UserChanges(role=role))
    except PanelError as exc:
        await db.rollback()
        return _back(request, user_id, Flash(exc.detail or "The role was not changed.", "error"))
    return _back(request, user_id, Flash(f"{target.email} is now {ROLE_LABELS[role]}.", "success"))


@router.post("/users/{user_id}/suspend")
async def suspend(
    request: Request,
    user_id: uuid.UUID,
    principal: Suspender,
    db: DbSession,
    database: DatabaseDep,
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Suspend an account: its sessions end and its keys are revoked."""
    target = await service.get_user(db, user_id)
    if not reason.strip():
        return _back(request, user_id, Flash("Give a reason for the suspension.", "error"))
    try:
        async with audit_failures(
            database, principal.actor, "user.suspend", "user", user_id, session=db
        ):
            ended = await service.suspend_user(db, principal, target, reason)
    except PanelError as exc:
        await db.rollback()
        return _back(request, user_id, Flash(exc.detail or "Not suspended.", "error"))
    note = f"Suspended. Ended {ended.sessions} session(s) and revoked {ended.api_keys} key(s)."
    return _back(request, user_id, Flash(note, "success"))


@router.post("/users/{user_id}/unsuspend")
async def unsuspend(
    request: Request,
    user_id: uuid.UUID,
    principal: Suspender,
    db: DbSession,
    database: DatabaseDep,
) -> Response:
    """Lift a suspension."""
    target = await service.get_user(db, user_id)
    try:
        async with audit_failures(
            database, principal.actor, "user.unsuspend", "user", user_id, session=db
        ):
            await service.unsuspend_user(db, principal, target)
    except PanelError as exc:
        await db.rollback()
        return _back(request, user_id, Flash(exc.detail or "Not changed.", "error"))
    return _back(request, user_id, Flash("The suspension was lifted.", "success"))


@router.get("/audit")
async def audit_page(
    request: Request,
    principal: Auditor,
    db: DbSession,
    page: PageQuery,
    action: Search = "",
    resource: Search = "",
    status: AuditStatus | None = None,
) -> Response:
    """The audit log, newest first, filtered by action, resource and outcome."""
    filters = AuditFilter(action=action or None, resource=resource or None, status=status)
    rows, total = await list_entries(db, filters, page)
    return render(
        request,
        "admin/audit.html",
        user=principal.user,
        rows=rows,
        action=action,
        resource=resource,
        status=status.value if status else "",
        pagination=page.meta(total)["pagination"],
    )
