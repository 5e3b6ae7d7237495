"""Audit entries on the wire (spec §12.4)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.domain.audit.query import AuditRow
from stellarstack.panel.schemas import ApiModel

__all__ = ["AuditEntryOut"]


class AuditEntryOut(ApiModel):
    """One audited action: who, from where, what, to which resource, and how it ended."""

    id: uuid.UUID
    created_at: datetime
    actor_type: ActorType
    actor_id: str
    actor_ip: str | None
    user_id: uuid.UUID | None
    user_email: str | None
    action: str
    resource: str
    resource_id: str | None
    status: AuditStatus
    error: str | None
    details: dict[str, Any] | None

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntryOut:
        """Build from a query row."""
        e = row.entry
        return cls(
            id=e.id,
            created_at=e.created_at,
            actor_type=e.actor_type,
            actor_id=e.actor_id,
            actor_ip=e.actor_ip,
            user_id=e.user_id,
            user_email=row.user_email,
            action=e.action,
            resource=e.resource,
            resource_id=e.resource_id,
            status=e.status,
            error=e.error,
            details=e.details,
        )
