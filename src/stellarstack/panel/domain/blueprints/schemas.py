"""Request and response bodies of the blueprints API (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from stellarstack.panel.db.enums import BlueprintSource
from stellarstack.panel.schemas import ApiModel

__all__ = [
    "BlueprintDetail",
    "BlueprintSummary",
    "ImportRequest",
    "ImportResult",
    "SyncRequest",
    "SyncResult",
    "VersionOut",
]

MAX_DOCUMENT_CHARS = 1024 * 1024


class VersionOut(ApiModel):
    """A selectable version of a blueprint."""

    id: uuid.UUID
    tag: str
    name: str
    docker_image: str | None
    recommended: bool
    channel: str
    deprecation_notice: str | None
    min_daemon_version: str | None


class BlueprintSummary(ApiModel):
    """A blueprint as lists show it."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    category: str
    icon: str | None
    docker_image: str
    default_memory_mb: int
    default_cpu: int
    default_disk_mb: int
    source: BlueprintSource
    enabled: bool
    updated_at: datetime


class BlueprintDetail(BlueprintSummary):
    """A blueprint with its variables' JSON Schema, full definition, versions and report."""

    config_schema: dict[str, Any]
    definition: dict[str, Any]
    source_ref: str | None
    import_report: dict[str, Any] | None
    versions: list[VersionOut]


class ImportRequest(ApiModel):
    """An egg (PTDL_v1/v2 JSON, PLCN_v3 YAML) or a StellarStack blueprint to import."""

    document: str = Field(min_length=2, max_length=MAX_DOCUMENT_CHARS)
    filename: str | None = Field(default=None, max_length=255)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,126}[a-z0-9]$")
    force: bool = Field(default=False, description="Replace a blueprint of another source.")
    dry_run: bool = Field(default=False, description="Preview the result; save nothing.")


class ImportResult(ApiModel):
    """What an import produced: the blueprint (saved unless dry run) and the egg report."""

    slug: str
    name: str
    outcome: Literal["created", "updated", "unchanged", "preview"]
    exists: bool
    blueprint: BlueprintDetail | None
    definition: dict[str, Any]
    report: dict[str, Any] | None


class SyncRequest(ApiModel):
    """Where to sync blueprints from (spec §10.5)."""

    source: Literal["url", "git", "directory"]
    url: str | None = Field(default=None, max_length=2048)
    ref: str | None = Field(default=None, max_length=255, description="Branch or tag (git).")
    force: bool = False


class SyncResult(ApiModel):
    """Counts of a sync, and the files that failed."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    skipped: list[str]
    problems: list[dict[str, str]]
