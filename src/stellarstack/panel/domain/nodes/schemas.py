"""Request and response bodies of the node routes (camelCase on the wire)."""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from stellarstack.panel.db.enums import NodeStatus, Protocol
from stellarstack.panel.schemas import ApiModel

__all__ = [
    "AllocationBatch",
    "AllocationCreate",
    "AllocationOut",
    "DaemonProbeOut",
    "NodeCredentialsOut",
    "NodeOut",
    "NodeRegistered",
    "NodeRegistration",
    "NodeServerOut",
    "NodeSpecs",
    "NodeStats",
    "NodeUpdate",
    "RegistrationTokenCreate",
    "RegistrationTokenOut",
    "check_hostname",
]

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def check_hostname(value: str) -> str:
    """A DNS name or an IP address a panel can reach the node at; raise ValueError otherwise."""
    value = value.strip().rstrip(".")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.split(".")
    if not value or len(value) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in labels):
        raise ValueError("must be a DNS name (letters, digits, '-' and '.') or an IP address")
    return value.lower()


NodeName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Region = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    AfterValidator(str.lower),
]
Text = Annotated[str, StringConstraints(max_length=255), AfterValidator(_printable)]
Hostname = Annotated[str, StringConstraints(max_length=253), AfterValidator(check_hostname)]
Port = Annotated[int, Field(ge=1, le=65535)]
MaxServers = Annotated[int, Field(ge=1, le=100_000)]


class RegistrationTokenCreate(ApiModel):
    """`POST /admin/nodes/token`: what the new node will be called and may host."""

    name: NodeName
    region: Region = "default"
    location: Text | None = None
    max_servers: MaxServers | None = None


class RegistrationTokenOut(ApiModel):
    """A new registration token (shown once) and the commands that use it."""

    registration_token: str
    expires_at: datetime
    name: str
    region: str
    max_servers: int | None
    install_command: str
    register_command: str


class NodeSpecs(ApiModel):
    """What the node detected about itself: cores, memory and disk in MiB."""

    cpu: int = Field(ge=0, le=65_536)
    memory: int = Field(ge=0, le=1 << 40)
    disk: int = Field(ge=0, le=1 << 50)


class NodeRegistration(ApiModel):
    """`POST /nodes/register` body, sent by a daemon with `X-Registration-Token`."""

    public_key: str = Field(min_length=1, max_length=16_384)
    hostname: Hostname
    port: Port = 5000
    sftp_port: Port = 2022
    scheme: Literal["http", "https"] = "https"
    specs: NodeSpecs
    version: str | None = Field(default=None, max_length=64)


class NodeRegistered(ApiModel):
    """What a registered daemon keeps: its id, token, certificate and the panel's keys."""

    node_id: uuid.UUID
    api_token: str
    certificate: str
    ca_certificate: str
    panel_public_key: str
    redis_url: str | None
    panel_url: str


class NodeCredentialsOut(ApiModel):
    """A rotated node API token (shown once)."""

    node_id: uuid.UUID
    api_token: str


class NodeOut(ApiModel):
    """A node as admins see it."""

    id: uuid.UUID
    name: str
    description: str | None
    fqdn: str
    scheme: str
    port: int
    sftp_port: int
    region: str
    location: str | None
    public: bool
    cpu_cores: int
    memory_mb: int
    disk_mb: int
    max_servers: int | None
    status: NodeStatus
    last_heartbeat_at: datetime | None
    last_metrics: dict[str, Any] | None
    daemon_version: str | None
    version_compatible: bool
    version_message: str
    certificate_expires_at: datetime | None
    created_at: datetime


AdminStatus = Literal["draining", "maintenance", "active"]


class NodeUpdate(ApiModel):
    """`PATCH /nodes/{id}`: fields to change; `status` drains, pauses or re-activates a node."""

    name: NodeName | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    fqdn: Hostname | None = None
    scheme: Literal["http", "https"] | None = None
    port: Port | None = None
    sftp_port: Port | None = None
    region: Region | None = None
    location: Text | None = None
    public: bool | None = None
    max_servers: MaxServers | None = None
    memory_overallocate_percent: int | None = Field(default=None, ge=-1, le=1000)
    disk_overallocate_percent: int | None = Field(default=None, ge=-1, le=1000)
    cpu_overallocate_percent: int | None = Field(default=None, ge=-1, le=1000)
    status: AdminStatus | None = None


class AllocationCreate(ApiModel):
    """`POST /nodes/{id}/allocations`: an IP and ports or ranges like `"25565-25600"`."""

    ip: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
    ports: list[Annotated[str | int, Field()]] = Field(min_length=1, max_length=100)
    protocol: Protocol = Protocol.TCP
    ip_alias: Text | None = None
    notes: Text | None = None


class AllocationOut(ApiModel):
    """One IP:port of a node."""

    id: uuid.UUID
    ip: str
    ip_alias: str | None
    port: int
    protocol: Protocol
    server_id: uuid.UUID | None
    is_primary: bool
    notes: str | None


class AllocationBatch(ApiModel):
    """What one `POST …/allocations` created."""

    created: int
    allocations: list[AllocationOut]


class NodeServerOut(ApiModel):
    """A server hosted on a node."""

    id: uuid.UUID
    identifier: str
    name: str
    status: str


class NodeStats(ApiModel):
    """A node's latest heartbeat, for live charts."""

    id: uuid.UUID
    status: NodeStatus
    last_heartbeat_at: datetime | None
    metrics: dict[str, Any] | None
    daemon_version: str | None


class DaemonProbeOut(ApiModel):
    """What the node's daemon said to `GET /health` over verified TLS (or why it could not)."""

    reachable: bool
    trusted: bool
    status: str | None
    version: str | None
    node_id: str | None
    error: str | None
