"""`/api/v1/servers/{server_id}/subusers`: per-server access for other users."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/servers/{server_id}/subusers", tags=["subusers"])
