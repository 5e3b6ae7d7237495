"""`/api/v1/nodes`: node administration and allocations."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/nodes", tags=["nodes"])
