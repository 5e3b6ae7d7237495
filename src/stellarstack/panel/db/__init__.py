"""The panel's database: models, engine and sessions, and Alembic migrations.

`models` holds the tables, `session` the `Database` (engine + session factory), `migrate` the
programmatic Alembic commands (`upgrade`, `downgrade`, `current`, `check`).
"""

from __future__ import annotations

from stellarstack.panel.db.base import Base, UTCDateTime, utcnow
from stellarstack.panel.db.session import Database, create_engine, create_sessionmaker

__all__ = ["Base", "Database", "UTCDateTime", "create_engine", "create_sessionmaker", "utcnow"]
