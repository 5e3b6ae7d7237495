"""`/api/v1/users/me/api-keys`: the user's API keys."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/users/me/api-keys", tags=["api-keys"])
