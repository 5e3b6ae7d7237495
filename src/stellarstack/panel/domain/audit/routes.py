"""`/api/v1/admin/audit`: the audit log for admins."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/admin/audit", tags=["audit"])
