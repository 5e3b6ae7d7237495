"""Blueprints (game templates, spec §8.1.2) and their versions (spec §10.5)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stellarstack.panel.db.base import Base, TimestampMixin, UUIDPrimaryKeyMixin, enum_column_type
from stellarstack.panel.db.enums import BlueprintSource

__all__ = ["Blueprint", "BlueprintVersion"]


class Blueprint(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A game template: image, defaults, variables, startup and ready check.

    The columns hold what lists and placement need; `definition` holds the whole parsed
    blueprint so nothing is lost in translation.
    """

    __tablename__ = "blueprints"

    slug: Mapped[str] = mapped_column(sa.String(128), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    category: Mapped[str] = mapped_column(sa.String(64), index=True)
    icon: Mapped[str | None] = mapped_column(sa.String(2048))
    docker_image: Mapped[str] = mapped_column(sa.String(255))

    default_memory_mb: Mapped[int]
    # Percent of one core (200 = two cores).
    default_cpu: Mapped[int]
    default_disk_mb: Mapped[int]

    # JSON Schema of the user-configurable variables.
    config_schema: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[BlueprintSource] = mapped_column(
        enum_column_type(BlueprintSource), default=BlueprintSource.OPERATOR
    )
    # Where it was imported or synced from (a git URL, an egg file name).
    source_ref: Mapped[str | None] = mapped_column(sa.String(2048))
    # SHA-256 of the source document, to tell whether a sync changed anything.
    source_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # What an egg import could not translate, shown to the operator.
    import_report: Mapped[dict[str, Any] | None]
    enabled: Mapped[bool] = mapped_column(default=True, server_default=sa.true())

    versions: Mapped[list[BlueprintVersion]] = relationship(
        back_populates="blueprint",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="BlueprintVersion.position",
    )


class BlueprintVersion(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A selectable version of a blueprint (`1.20.4`), possibly with its own image."""

    __tablename__ = "blueprint_versions"
    __table_args__ = (sa.UniqueConstraint("blueprint_id", "tag"),)

    blueprint_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("blueprints.id", ondelete="CASCADE")
    )
    tag: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(255))
    # None means the blueprint's image.
    docker_image: Mapped[str | None] = mapped_column(sa.String(255))
    recommended: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # stable, beta or legacy (spec §10.5).
    channel: Mapped[str] = mapped_column(sa.String(16), default="stable")
    deprecation_notice: Mapped[str | None] = mapped_column(sa.Text)
    min_daemon_version: Mapped[str | None] = mapped_column(sa.String(32))
    # Display order, newest first by convention.
    position: Mapped[int] = mapped_column(default=0)

    blueprint: Mapped[Blueprint] = relationship(back_populates="versions")
