"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Review before committing. Existing tables are altered in batch mode (SQLite rebuilds them;
migrate.py runs with foreign keys off there and checks them afterwards). Portable types only:
sa.Uuid, sa.JSON, sa.DateTime(timezone=True), sa.Enum(native_enum=False); portable server
defaults only: sa.true(), sa.false(), sa.func.now().
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
% if imports:
${imports}
% endif

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    """Upgrade schema."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Downgrade schema."""
    ${downgrades if downgrades else "pass"}
