"""External ids on users and servers, for billing and provisioning integrations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:40:00.000000

On SQLite the unique constraints make both tables rebuild (copy, DROP, rename) while sessions,
servers, allocations, variables, backups… still point at them: migrate.py runs this with
foreign keys off so that DROP cascades into nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `external_id` (nullable, unique) to users and servers."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=191), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_users_external_id"), ["external_id"])

    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=191), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_servers_external_id"), ["external_id"])


def downgrade() -> None:
    """Drop `external_id` from servers and users."""
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_servers_external_id"), type_="unique")
        batch_op.drop_column("external_id")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_external_id"), type_="unique")
        batch_op.drop_column("external_id")
