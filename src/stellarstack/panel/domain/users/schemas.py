"""User shapes on the wire: the profile, its updates, password changes and sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from stellarstack.panel.db.enums import Role
from stellarstack.panel.schemas import ApiModel

__all__ = ["PasswordChange", "ProfileUpdate", "SessionInfo", "UserOut"]


class UserOut(ApiModel):
    """A user as the API shows it (never the password hash or TOTP secret)."""

    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    email_verified: bool
    suspended: bool
    created_at: datetime


class ProfileUpdate(ApiModel):
    """Fields a user may change; a new email needs the current password and is verified first."""

    name: str | None = Field(default=None, max_length=4096)
    email: str | None = Field(default=None, max_length=4096)
    current_password: str | None = Field(default=None, max_length=4096)


class PasswordChange(ApiModel):
    """The current password and the new one."""

    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class SessionInfo(ApiModel):
    """One signed-in browser of the user (never its token)."""

    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime | None
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool = False
