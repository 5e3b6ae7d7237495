"""User shapes on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime

from stellarstack.panel.db.enums import Role
from stellarstack.panel.schemas import ApiModel

__all__ = ["UserOut"]


class UserOut(ApiModel):
    """A user as the API shows it (never the password hash or TOTP secret)."""

    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    email_verified: bool
    suspended: bool
    created_at: datetime
