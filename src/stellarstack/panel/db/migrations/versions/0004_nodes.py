"""Nodes: columns and tables the registration, command and heartbeat work needs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 17:00:00.000000

Review before committing. Existing tables are altered in batch mode (SQLite rebuilds them;
migrate.py runs with foreign keys off there and checks them afterwards). Portable types only.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema (nothing yet)."""


def downgrade() -> None:
    """Downgrade schema (nothing yet)."""
