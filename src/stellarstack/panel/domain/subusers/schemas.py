"""Subuser shapes on the wire; a pending invitation looks like a subuser with `pending`."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from stellarstack.panel.schemas import ApiModel

__all__ = ["SubuserCreate", "SubuserOut", "SubuserUpdate"]

MAX_PERMISSIONS = 64


class SubuserCreate(ApiModel):
    """Share a server with someone by email, with a permission list."""

    email: str = Field(min_length=3, max_length=320)
    permissions: list[str] = Field(max_length=MAX_PERMISSIONS)


class SubuserUpdate(ApiModel):
    """A subuser's new permission list (replaces the old one)."""

    permissions: list[str] = Field(max_length=MAX_PERMISSIONS)


class SubuserOut(ApiModel):
    """Someone with access to a server, or an invitation not yet accepted."""

    id: uuid.UUID
    user_id: uuid.UUID | None
    email: str
    name: str | None
    permissions: list[str]
    pending: bool
    created_at: datetime
    expires_at: datetime | None = None
