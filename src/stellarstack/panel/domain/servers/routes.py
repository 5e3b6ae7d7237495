"""Server API routes (placeholder: filled by the servers work)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["servers"])
