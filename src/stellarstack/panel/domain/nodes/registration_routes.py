"""Node registration: `/api/v1/admin/nodes/token` and `/api/v1/nodes/register`."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="", tags=["nodes"])
