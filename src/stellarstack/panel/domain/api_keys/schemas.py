"""API key shapes on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from stellarstack.panel.db.enums import ApiKeyKind
from stellarstack.panel.schemas import ApiModel

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyOut"]

MAX_NAME = 64
MAX_PERMISSIONS = 64
MAX_ALLOWED_IPS = 32


class ApiKeyCreate(ApiModel):
    """What a user asks for: a name, a kind, a permission subset, an optional expiry."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    kind: ApiKeyKind = ApiKeyKind.CLIENT
    permissions: list[str] = Field(min_length=1, max_length=MAX_PERMISSIONS)
    expires_at: datetime | None = None
    allowed_ips: list[str] = Field(default_factory=list, max_length=MAX_ALLOWED_IPS)


class ApiKeyOut(ApiModel):
    """A key as its owner sees it later: never the token, only its prefix."""

    id: uuid.UUID
    name: str
    prefix: str
    kind: ApiKeyKind
    permissions: list[str]
    allowed_ips: list[str]
    last_used_at: datetime | None
    last_used_ip: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyOut):
    """A key just created, with its token: shown this once and never again."""

    token: str
