"""`/api/v1/auth/2fa`: TOTP enrollment, confirmation, recovery codes, the sign-in challenge."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/auth/2fa", tags=["auth"])
