"""Game servers and what belongs to each: variables, subusers and deployments.

Deleting a server deletes its variables, subusers, deployments, backups and schedules (ON
DELETE CASCADE) and frees its allocations (SET NULL). Backup archives in storage are not rows:
the backup service removes them before the server row goes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stellarstack.panel.db.base import Base, TimestampMixin, UUIDPrimaryKeyMixin, enum_column_type
from stellarstack.panel.db.enums import DeploymentKind, DeploymentStatus, ServerStatus

if TYPE_CHECKING:
    from stellarstack.panel.db.models.blueprints import Blueprint, BlueprintVersion
    from stellarstack.panel.db.models.identity import User
    from stellarstack.panel.db.models.nodes import Allocation, Node
    from stellarstack.panel.db.models.operations import Backup, Schedule

__all__ = ["IDENTIFIER_LENGTH", "Deployment", "Server", "ServerVariable", "Subuser"]

# Length of the short identifier shown in URLs and SFTP usernames. 12 hex characters keep the
# chance of a collision negligible at 20,000 servers (8, as in Pterodactyl, would not).
IDENTIFIER_LENGTH = 12

_OWNED_CHILDREN = "all, delete-orphan"


class Server(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A game server: one container (or process) on one node, built from a blueprint."""

    __tablename__ = "servers"

    identifier: Mapped[str] = mapped_column(sa.String(16), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)

    # A user who owns servers cannot be deleted; a node with servers cannot be removed.
    owner_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    node_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("nodes.id", ondelete="RESTRICT"), index=True
    )
    blueprint_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("blueprints.id", ondelete="RESTRICT"), index=True
    )
    blueprint_version_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("blueprint_versions.id", ondelete="SET NULL")
    )
    # The version the server runs, kept even if the blueprint drops that version.
    version_tag: Mapped[str | None] = mapped_column(sa.String(64))
    # Overrides of the blueprint's image and startup command; None means the blueprint's.
    docker_image: Mapped[str | None] = mapped_column(sa.String(255))
    startup_command: Mapped[str | None] = mapped_column(sa.Text)

    container_id: Mapped[str | None] = mapped_column(sa.String(128))
    container_name: Mapped[str | None] = mapped_column(sa.String(255))

    # Limits. CPU in percent of one core (0 = unlimited); swap -1 = unlimited, 0 = none.
    memory_mb: Mapped[int]
    swap_mb: Mapped[int] = mapped_column(default=0)
    disk_mb: Mapped[int]
    cpu_limit: Mapped[int] = mapped_column(default=0)
    # A cpuset such as "0-1,4"; None lets the kernel schedule on any CPU.
    cpu_pinning: Mapped[str | None] = mapped_column(sa.String(64))
    io_weight: Mapped[int] = mapped_column(default=500)
    pids_limit: Mapped[int] = mapped_column(default=512)
    # None means unlimited.
    backup_limit: Mapped[int | None]
    allocation_limit: Mapped[int | None]

    status: Mapped[ServerStatus] = mapped_column(
        enum_column_type(ServerStatus), default=ServerStatus.OFFLINE, index=True
    )
    auto_start: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    installed_at: Mapped[datetime | None]
    # Why the last install failed (the tail of the install log), for the owner to read.
    install_error: Mapped[str | None] = mapped_column(sa.Text)
    suspended_at: Mapped[datetime | None]
    suspend_reason: Mapped[str | None] = mapped_column(sa.Text)
    last_crash_at: Mapped[datetime | None]
    crash_count: Mapped[int] = mapped_column(default=0)
    # The daemon's time of the last status applied (0005): an older event changes nothing.
    status_changed_at: Mapped[datetime | None]
    # For billing and provisioning integrations; added in 0002.
    external_id: Mapped[str | None] = mapped_column(sa.String(191), unique=True)

    owner: Mapped[User] = relationship(back_populates="servers")
    node: Mapped[Node] = relationship(back_populates="servers")
    blueprint: Mapped[Blueprint] = relationship()
    blueprint_version: Mapped[BlueprintVersion | None] = relationship()
    allocations: Mapped[list[Allocation]] = relationship(
        back_populates="server", passive_deletes=True
    )
    variables: Mapped[list[ServerVariable]] = relationship(
        back_populates="server", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    subusers: Mapped[list[Subuser]] = relationship(
        back_populates="server", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="server", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    backups: Mapped[list[Backup]] = relationship(
        back_populates="server", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    schedules: Mapped[list[Schedule]] = relationship(
        back_populates="server", cascade=_OWNED_CHILDREN, passive_deletes=True
    )


@sa.event.listens_for(Server, "init")
def _assign_identifier(target: Server, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Derived from the id so the two never disagree; both exist before the first flush.
    if kwargs.get("id") is None:
        kwargs["id"] = uuid.uuid4()
    if kwargs.get("identifier") is None:
        kwargs["identifier"] = kwargs["id"].hex[:IDENTIFIER_LENGTH]


class ServerVariable(UUIDPrimaryKeyMixin, Base):
    """One environment variable of a server (a blueprint variable's current value)."""

    __tablename__ = "server_variables"
    __table_args__ = (sa.UniqueConstraint("server_id", "key"),)

    server_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("servers.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(128))
    value: Mapped[str] = mapped_column(sa.Text, default="")

    server: Mapped[Server] = relationship(back_populates="variables")


class Subuser(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A user granted some permissions (`server.console`, …) on someone else's server."""

    __tablename__ = "subusers"
    __table_args__ = (sa.UniqueConstraint("user_id", "server_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    server_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="CASCADE"), index=True
    )
    permissions: Mapped[list[str]] = mapped_column(default=list)

    user: Mapped[User] = relationship(back_populates="subusers")
    server: Mapped[Server] = relationship(back_populates="subusers")


class Deployment(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """One install, reinstall, update, rollback or transfer of a server, with its progress."""

    __tablename__ = "deployments"

    server_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[DeploymentKind] = mapped_column(
        enum_column_type(DeploymentKind), default=DeploymentKind.INSTALL
    )
    status: Mapped[DeploymentStatus] = mapped_column(
        enum_column_type(DeploymentStatus), default=DeploymentStatus.PENDING, index=True
    )
    # The current step (`pulling_image`, `creating_container`, …) and its percentage.
    step: Mapped[str | None] = mapped_column(sa.String(64))
    progress: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    from_version_tag: Mapped[str | None] = mapped_column(sa.String(64))
    to_version_tag: Mapped[str | None] = mapped_column(sa.String(64))
    # The safety backup an update takes first, restored on rollback.
    backup_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("backups.id", ondelete="SET NULL")
    )
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    server: Mapped[Server] = relationship(back_populates="deployments")
    backup: Mapped[Backup | None] = relationship()
    requested_by: Mapped[User | None] = relationship()
