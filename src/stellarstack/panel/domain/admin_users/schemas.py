"""Admin views of users on the wire: list rows, detail, create, update, suspend."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from stellarstack.panel.db.enums import Role
from stellarstack.panel.schemas import ApiModel

__all__ = ["AdminUserOut", "PlatformStats", "SuspendBody", "UserCreate", "UserDetail", "UserUpdate"]


class AdminUserOut(ApiModel):
    """A user as admins see it in lists."""

    id: uuid.UUID
    email: str
    name: str | None
    role: Role
    email_verified: bool
    suspended: bool
    suspended_at: datetime | None
    suspend_reason: str | None
    totp_enabled: bool
    last_login_at: datetime | None
    created_at: datetime


class UserDetail(AdminUserOut):
    """One user with the counts an admin looks at before acting."""

    max_servers: int | None
    max_memory_mb: int | None
    max_cpu: int | None
    max_disk_mb: int | None
    server_count: int
    api_key_count: int
    session_count: int


class UserCreate(ApiModel):
    """A new account made by an admin."""

    email: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=255)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.USER


class UserUpdate(ApiModel):
    """Fields an admin may change; absent fields stay as they are."""

    name: str | None = Field(default=None, max_length=255)
    role: Role | None = None
    max_servers: int | None = Field(default=None, ge=0, le=100_000)
    max_memory_mb: int | None = Field(default=None, ge=0, le=100_000_000)
    max_cpu: int | None = Field(default=None, ge=0, le=100_000)
    max_disk_mb: int | None = Field(default=None, ge=0, le=1_000_000_000)


class SuspendBody(ApiModel):
    """Why an account is suspended (shown to admins, kept in the audit log)."""

    reason: str = Field(min_length=1, max_length=1000)


class PlatformStats(ApiModel):
    """Counts for the admin overview."""

    users: int
    suspended_users: int
    users_by_role: dict[str, int]
    servers: int
    nodes: int
    nodes_by_status: dict[str, int]
    active_api_keys: int
