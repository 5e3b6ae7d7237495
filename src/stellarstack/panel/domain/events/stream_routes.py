"""`GET /api/v1/events/stream`: the SSE event stream (placeholder: filled by the events work)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["events"])
