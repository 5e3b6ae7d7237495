"""`/api/v1/commands`: commands sent to nodes and their outcome."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/commands", tags=["commands"])
