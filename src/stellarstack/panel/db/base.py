"""The declarative base: naming convention, portable column types and shared mixins.

Every table gets a `Uuid` primary key generated in Python (assigned when the object is
constructed, so `server.id` is usable before the first flush) and, where it has a lifecycle,
`created_at`/`updated_at`. Datetimes are always timezone-aware UTC on both engines.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ENUM_LENGTH",
    "NAMING_CONVENTION",
    "Base",
    "CreatedAtMixin",
    "TimestampMixin",
    "UTCDateTime",
    "UUIDPrimaryKeyMixin",
    "enum_column_type",
    "utcnow",
]

# Constraint names must be deterministic: SQLite batch migrations and downgrades refer to
# constraints by name, and unnamed ones differ between engines.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Enums are stored as VARCHAR without a CHECK constraint, so adding a member is a code change
# and never a migration; one generous width keeps it that way.
ENUM_LENGTH = 32


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that stores UTC and always returns aware UTC datetimes.

    SQLite has no timezone type and hands back naive values; PostgreSQL returns the session's
    zone. Naive input is rejected: a naive datetime is a bug waiting to be off by hours.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before storing; refuse naive datetimes."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        # SQLite stores text; keep it naive UTC so values sort and compare lexically.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach (SQLite) or normalise (PostgreSQL) the UTC zone."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def enum_column_type(enum_cls: type[StrEnum]) -> sa.Enum:
    """A portable enum column: the members' values in a VARCHAR, validated in Python."""
    return sa.Enum(
        enum_cls,
        name=_snake(enum_cls.__name__),
        native_enum=False,
        create_constraint=False,
        length=ENUM_LENGTH,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(AsyncAttrs, DeclarativeBase):
    """Declarative base of every panel table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: sa.Uuid(),
        dict[str, Any]: sa.JSON(),
        list[str]: sa.JSON(),
    }

    def __repr__(self) -> str:
        ident = getattr(self, "id", None)
        return f"<{type(self).__name__} {ident}>"


class UUIDPrimaryKeyMixin:
    """A random UUID primary key, assigned at construction (see `_assign_id` below)."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-1000)


class CreatedAtMixin:
    """`created_at`, set by Python and defaulted by the database (for raw SQL inserts)."""

    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=sa.func.now(), sort_order=1000
    )


class TimestampMixin(CreatedAtMixin):
    """`created_at` and `updated_at`, set by Python and defaulted by the database."""

    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=sa.func.now(), sort_order=1001
    )


@sa.event.listens_for(UUIDPrimaryKeyMixin, "init", propagate=True)
def _assign_id(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Ids exist before the flush, so callers can put them in commands and audit entries
    # inside the same transaction that creates the row.
    if kwargs.get("id") is None:
        kwargs["id"] = uuid.uuid4()
