"""Machines that host game servers: nodes, their registration tokens, ports and commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stellarstack.panel.db.base import (
    Base,
    CreatedAtMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    enum_column_type,
)
from stellarstack.panel.db.enums import CommandStatus, NodeStatus, Protocol
from stellarstack.panel.db.models.identity import HASH_LENGTH, IP_LENGTH

if TYPE_CHECKING:
    from stellarstack.panel.db.models.identity import User
    from stellarstack.panel.db.models.servers import Server

__all__ = ["Allocation", "Node", "NodeCommand", "NodeRegistrationToken"]


class Node(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A machine running the daemon (spec §5)."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    # How the panel and browsers reach the daemon.
    fqdn: Mapped[str] = mapped_column(sa.String(255))
    scheme: Mapped[str] = mapped_column(sa.String(8), default="https")
    port: Mapped[int] = mapped_column(default=5000)
    sftp_port: Mapped[int] = mapped_column(default=2022)
    public_ip: Mapped[str | None] = mapped_column(sa.String(IP_LENGTH))

    region: Mapped[str] = mapped_column(sa.String(64), index=True)
    location: Mapped[str | None] = mapped_column(sa.String(255))
    # Whether automatic placement may choose this node (admins can still place servers on it).
    public: Mapped[bool] = mapped_column(default=True, server_default=sa.true())

    # Capacity as reported at registration (and refreshed by heartbeats).
    cpu_cores: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    disk_mb: Mapped[int] = mapped_column(default=0)
    # How far placement may exceed capacity, in percent; -1 disables the check.
    memory_overallocate_percent: Mapped[int] = mapped_column(default=0)
    disk_overallocate_percent: Mapped[int] = mapped_column(default=0)
    cpu_overallocate_percent: Mapped[int] = mapped_column(default=0)
    max_servers: Mapped[int | None]

    status: Mapped[NodeStatus] = mapped_column(
        enum_column_type(NodeStatus), default=NodeStatus.OFFLINE, index=True
    )
    last_heartbeat_at: Mapped[datetime | None]
    last_metrics: Mapped[dict[str, Any] | None]
    daemon_version: Mapped[str | None] = mapped_column(sa.String(64))

    # Credentials: the node API token (`strk_node_…`) is kept only as a hash.
    api_token_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    certificate_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    certificate_serial: Mapped[str | None] = mapped_column(sa.String(64))
    certificate_expires_at: Mapped[datetime | None]

    # Auto-scaling (spec §9): the cloud provider's id for the machine.
    provider_type: Mapped[str | None] = mapped_column(sa.String(64))
    provider_id: Mapped[str | None] = mapped_column(sa.String(255))
    auto_scaled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    allocations: Mapped[list[Allocation]] = relationship(
        back_populates="node", cascade="all, delete-orphan", passive_deletes=True
    )
    servers: Mapped[list[Server]] = relationship(back_populates="node", passive_deletes=True)


class NodeRegistrationToken(UUIDPrimaryKeyMixin, CreatedAtMixin, Base):
    """A single-use `strk_reg_…` token an admin hands to a new daemon (spec §4.3.1)."""

    __tablename__ = "node_registration_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    region: Mapped[str] = mapped_column(sa.String(64))
    location: Mapped[str | None] = mapped_column(sa.String(255))
    max_servers: Mapped[int | None]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("nodes.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

    node: Mapped[Node | None] = relationship()
    created_by: Mapped[User | None] = relationship()


class Allocation(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """An IP:port on a node; free while `server_id` is None."""

    __tablename__ = "allocations"
    __table_args__ = (sa.UniqueConstraint("node_id", "ip", "port", "protocol"),)

    node_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("nodes.id", ondelete="CASCADE"))
    # Deleting a server frees its ports rather than deleting them.
    server_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="SET NULL"), index=True
    )
    ip: Mapped[str] = mapped_column(sa.String(IP_LENGTH))
    # What players are told to connect to, when it is not the bind address.
    ip_alias: Mapped[str | None] = mapped_column(sa.String(255))
    port: Mapped[int]
    protocol: Mapped[Protocol] = mapped_column(enum_column_type(Protocol), default=Protocol.TCP)
    is_primary: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    notes: Mapped[str | None] = mapped_column(sa.String(255))

    node: Mapped[Node] = relationship(back_populates="allocations")
    server: Mapped[Server | None] = relationship(back_populates="allocations")


class NodeCommand(UUIDPrimaryKeyMixin, CreatedAtMixin, Base):
    """A command sent to a daemon through its stream, tracked until it finishes (spec §5.3).

    `id` is the command id the daemon deduplicates on; `type` is a protocol command type
    such as `server.start` (validated by `stellarstack.protocol`, stored as text).
    """

    __tablename__ = "node_commands"
    __table_args__ = (sa.Index(None, "node_id", "status"),)

    node_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("nodes.id", ondelete="CASCADE"))
    # Kept when the server goes: `server.delete` outlives its server.
    server_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[CommandStatus] = mapped_column(
        enum_column_type(CommandStatus), default=CommandStatus.QUEUED
    )
    # The broker's entry id, to correlate acknowledgements and dead letters.
    stream_id: Mapped[str | None] = mapped_column(sa.String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(sa.Text)

    node: Mapped[Node] = relationship()
    server: Mapped[Server | None] = relationship()
