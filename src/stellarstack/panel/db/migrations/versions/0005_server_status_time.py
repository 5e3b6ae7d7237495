"""When a server's status was last reported, so a late event cannot overwrite a newer one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 19:30:00.000000

`servers.status_changed_at` holds the daemon's time of the last `server.status` event applied.
An event older than it (replayed, or reclaimed by another replica) changes nothing. Revises
0004 directly: the servers work needed no 0005.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `servers.status_changed_at` (nullable: no status reported yet)."""
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Drop `servers.status_changed_at`."""
    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("status_changed_at")
