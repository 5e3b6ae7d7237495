"""`/api/v1/users/me`: the signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

from stellarstack.panel.deps import CurrentUser
from stellarstack.panel.domain.users.schemas import UserOut
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=Envelope[UserOut])
async def get_me(user: CurrentUser) -> Envelope[UserOut]:
    """Retrieve the signed-in user."""
    return ok(UserOut.model_validate(user))
