"""`/api/v1/admin/users`: user management for admins."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/admin/users", tags=["admin"])
