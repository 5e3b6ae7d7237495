"""`/api/v1/auth/oauth`: sign-in and account linking with GitHub, Discord and OpenID Connect."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/auth/oauth", tags=["auth"])
