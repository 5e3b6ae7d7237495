"""Running servers over time: backups, schedules with their tasks, and the audit log."""

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
from stellarstack.panel.db.enums import (
    ActorType,
    AuditStatus,
    BackupAdapter,
    BackupStatus,
    ScheduleAction,
)
from stellarstack.panel.db.models.identity import IP_LENGTH

if TYPE_CHECKING:
    from stellarstack.panel.db.models.identity import User
    from stellarstack.panel.db.models.servers import Server

__all__ = ["AuditLog", "Backup", "Schedule", "ScheduleTask"]


class Backup(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """An archive of a server's files, on local disk or in S3."""

    __tablename__ = "backups"

    server_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    adapter: Mapped[BackupAdapter] = mapped_column(
        enum_column_type(BackupAdapter), default=BackupAdapter.LOCAL
    )
    status: Mapped[BackupStatus] = mapped_column(
        enum_column_type(BackupStatus), default=BackupStatus.PENDING, index=True
    )
    is_successful: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # A locked backup survives rotation and cannot be deleted until unlocked.
    locked: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Glob patterns left out of the archive.
    ignored_files: Mapped[list[str]] = mapped_column(default=list)
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(128))
    # The object key or path inside the adapter's storage.
    storage_key: Mapped[str | None] = mapped_column(sa.String(1024))
    error: Mapped[str | None] = mapped_column(sa.Text)
    completed_at: Mapped[datetime | None]

    server: Mapped[Server] = relationship(back_populates="backups")


class Schedule(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A cron schedule on a server; what it does is its ordered tasks."""

    __tablename__ = "schedules"
    __table_args__ = (sa.Index(None, "enabled", "next_run_at"),)

    server_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("servers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    # A five-field cron expression ("0 4 * * *"), evaluated in `timezone`.
    cron: Mapped[str] = mapped_column(sa.String(128))
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    only_when_online: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # Set while a run is in progress, so runs of one schedule never overlap.
    is_processing: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]

    server: Mapped[Server] = relationship(back_populates="schedules")
    tasks: Mapped[list[ScheduleTask]] = relationship(
        back_populates="schedule",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ScheduleTask.sequence",
    )


class ScheduleTask(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """One step of a schedule: run `time_offset_s` after the previous step."""

    __tablename__ = "schedule_tasks"
    __table_args__ = (sa.UniqueConstraint("schedule_id", "sequence"),)

    schedule_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("schedules.id", ondelete="CASCADE")
    )
    sequence: Mapped[int]
    action: Mapped[ScheduleAction] = mapped_column(enum_column_type(ScheduleAction))
    # `{"command": "save-all"}` for a command; `{"ignored_files": [...]}` for a backup.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    time_offset_s: Mapped[int] = mapped_column(default=0)
    continue_on_failure: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    schedule: Mapped[Schedule] = relationship(back_populates="tasks")


class AuditLog(UUIDPrimaryKeyMixin, CreatedAtMixin, Base):
    """An append-only record of a sensitive action (spec §12.4, §13)."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        sa.Index(None, "resource", "resource_id"),
        sa.Index(None, "created_at"),
    )

    # The user behind the action, if any; the entry outlives the user.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_type: Mapped[ActorType] = mapped_column(enum_column_type(ActorType))
    # A user, API key or node id, or a name such as `scheduler` for the system.
    actor_id: Mapped[str] = mapped_column(sa.String(64))
    actor_ip: Mapped[str | None] = mapped_column(sa.String(IP_LENGTH))
    action: Mapped[str] = mapped_column(sa.String(128), index=True)
    resource: Mapped[str] = mapped_column(sa.String(64))
    resource_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any] | None]
    status: Mapped[AuditStatus] = mapped_column(
        enum_column_type(AuditStatus), default=AuditStatus.SUCCESS
    )
    error: Mapped[str | None] = mapped_column(sa.Text)

    user: Mapped[User | None] = relationship()
