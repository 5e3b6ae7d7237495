"""Request and response bodies of the commands API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from stellarstack.panel.db.enums import CommandStatus
from stellarstack.panel.schemas import ApiModel

__all__ = ["CommandOut", "NewCommand", "NodeHealthOut"]


class NewCommand(ApiModel):
    """A command for a node: a spec §5.3 type, its payload, and how long it stays valid."""

    type: str = Field(min_length=1, max_length=64, examples=["server.start"])
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"serverId": "…"}])
    ttl: float | None = Field(
        default=None, gt=0, le=86400, description="Seconds; the panel's default when omitted."
    )


class CommandOut(ApiModel):
    """A command and where it is: queued, delivered, succeeded, failed, expired, dead-lettered."""

    id: uuid.UUID
    node_id: uuid.UUID
    server_id: uuid.UUID | None
    type: str
    status: CommandStatus
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    expires_at: datetime
    delivered_at: datetime | None
    finished_at: datetime | None


class NodeHealthOut(ApiModel):
    """What a node's daemon says about itself, asked directly over HTTP."""

    node_id: uuid.UUID
    reachable: bool
    status: str
    version: str | None = None
    runtime: str | None = None
    breaker: str
