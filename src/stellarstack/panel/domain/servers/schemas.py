"""Request and response bodies of the server routes (camelCase on the wire)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator

from stellarstack.panel.db.enums import DeploymentKind, DeploymentStatus, ServerStatus
from stellarstack.panel.schemas import ApiModel

__all__ = [
    "AddressOut",
    "DeploymentOut",
    "PowerAction",
    "PowerRequest",
    "ServerCreate",
    "ServerCreated",
    "ServerOut",
    "ServerUpdate",
    "SuspendRequest",
    "VariableOut",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

MAX_VARIABLE_VALUE = 4096


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


ServerName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Description = Annotated[str, StringConstraints(max_length=1024)]
MemoryMb = Annotated[int, Field(ge=64, le=1024 * 1024, description="MiB of memory.")]
CpuPercent = Annotated[int, Field(ge=10, le=12800, description="Percent of one core.")]
DiskMb = Annotated[int, Field(ge=64, le=16 * 1024 * 1024, description="MiB of disk.")]
Variables = Annotated[
    dict[str, Annotated[str, StringConstraints(max_length=MAX_VARIABLE_VALUE)]],
    Field(max_length=256, description="Environment variable → value, checked by its rules."),
]


def _check_variable_names(values: dict[str, str] | None) -> dict[str, str] | None:
    if values is None:
        return None
    bad = [k for k in values if not _ENV_KEY.fullmatch(k)]
    if bad:
        raise ValueError(f"invalid variable names: {', '.join(repr(k) for k in bad[:5])}")
    return values


class ServerCreate(ApiModel):
    """`POST /servers`: deploy a blueprint. Unset resources take the blueprint's defaults."""

    name: ServerName
    description: Description | None = None
    blueprint: str = Field(min_length=1, max_length=128, description="Blueprint slug or id.")
    version: str | None = Field(
        default=None, max_length=64, description="Version tag; the recommended one if unset."
    )
    node_id: uuid.UUID | None = Field(default=None, description="A node; chosen if unset.")
    region: str | None = Field(default=None, max_length=64, description="Prefer this region.")
    memory_mb: MemoryMb | None = None
    cpu: CpuPercent | None = None
    disk_mb: DiskMb | None = None
    variables: Variables = Field(default_factory=dict)
    allocation_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=32,
        description="Allocations of the chosen node to use (the first is primary); free ones "
        "are picked if unset.",
    )
    owner_id: uuid.UUID | None = Field(
        default=None, description="Admins only: deploy for another user."
    )
    start_on_completion: bool = True
    external_id: str | None = Field(default=None, max_length=191)

    _names = field_validator("variables")(_check_variable_names)


class ServerUpdate(ApiModel):
    """`PATCH /servers/{id}`: change what is set; resources and version need a restart."""

    name: ServerName | None = None
    description: Description | None = None
    memory_mb: MemoryMb | None = None
    cpu: CpuPercent | None = None
    disk_mb: DiskMb | None = None
    variables: Variables | None = None
    version: str | None = Field(default=None, max_length=64)

    _names = field_validator("variables")(_check_variable_names)


PowerAction = Literal["start", "stop", "restart", "kill"]


class PowerRequest(ApiModel):
    """Optional body of a power action."""

    wait: float = Field(default=0, ge=0, le=10, description="Seconds to wait for the outcome.")


class SuspendRequest(ApiModel):
    """`POST /servers/{id}/suspend` (admins)."""

    reason: str | None = Field(default=None, max_length=1024)


class AddressOut(ApiModel):
    """One allocation of a server."""

    id: uuid.UUID
    ip: str
    port: int
    protocol: str
    alias: str | None = None
    primary: bool = False


class VariableOut(ApiModel):
    """A blueprint variable and the server's value (hidden ones are omitted for users)."""

    env: str
    name: str
    description: str = ""
    value: str
    editable: bool
    rules: str = ""
    field_type: str = "text"


class ServerOut(ApiModel):
    """A server as its viewers see it."""

    id: uuid.UUID
    identifier: str
    name: str
    description: str | None
    status: ServerStatus
    owner_id: uuid.UUID
    node_id: uuid.UUID
    node_name: str | None = None
    blueprint_id: uuid.UUID
    blueprint_slug: str | None = None
    blueprint_name: str | None = None
    version_tag: str | None
    memory_mb: int
    cpu: int
    disk_mb: int
    address: str | None = Field(default=None, description="Primary `ip:port` players connect to.")
    allocations: list[AddressOut] = Field(default_factory=list)
    suspended: bool = False
    suspend_reason: str | None = None
    install_error: str | None = None
    crash_count: int = 0
    last_crash_at: datetime | None = None
    installed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class DeploymentOut(ApiModel):
    """One install / reinstall of a server and how far it got."""

    id: uuid.UUID
    server_id: uuid.UUID
    kind: DeploymentKind
    status: DeploymentStatus
    step: str | None
    progress: int
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime


class ServerCreated(ApiModel):
    """`POST /servers` answer: the server (INSTALLING) and its install deployment."""

    server: ServerOut
    deployment: DeploymentOut
