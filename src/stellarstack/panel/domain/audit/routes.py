"""`/api/v1/admin/audit`: the audit log for staff, filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from stellarstack.panel.auth.permissions import require_permission
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.deps import DbSession, PageQuery
from stellarstack.panel.domain.audit.query import AuditFilter, list_entries
from stellarstack.panel.domain.audit.schemas import AuditEntryOut
from stellarstack.panel.errors import FieldError, ValidationFailed
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/admin/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require_permission("audit.view"))]
Text = Annotated[str | None, Query(max_length=128)]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get("", response_model=Envelope[list[AuditEntryOut]])
async def list_audit_entries(
    _: Auditor,
    db: DbSession,
    page: PageQuery,
    actor_type: Annotated[ActorType | None, Query(alias="actorType")] = None,
    actor_id: Annotated[str | None, Query(alias="actorId", max_length=64)] = None,
    action: Text = None,
    resource: Text = None,
    resource_id: Annotated[str | None, Query(alias="resourceId", max_length=64)] = None,
    status: AuditStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Envelope[list[AuditEntryOut]]:
    """List audit entries, newest first (`action=user.*` matches a prefix)."""
    since, until = _utc(since), _utc(until)
    if since and until and since >= until:
        raise ValidationFailed([FieldError("until", "`until` must be after `since`.")])
    filters = AuditFilter(actor_type, actor_id, action, resource, resource_id, status, since, until)
    rows, total = await list_entries(db, filters, page)
    return ok([AuditEntryOut.of(row) for row in rows], meta=page.meta(total))
