"""`/api/v1/blueprints` and `/api/v1/admin/blueprints`: browse, import and sync blueprints."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["blueprints"])
