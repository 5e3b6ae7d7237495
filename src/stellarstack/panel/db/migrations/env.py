"""Alembic environment, driven by `stellarstack.panel.db.migrate` with an open connection.

Online runs get their connection (already inside a transaction) from
`config.attributes["connection"]`; offline runs (`--sql`) render SQL for `sqlalchemy.url`.
"""

from __future__ import annotations

from alembic import context

import stellarstack.panel.db.models  # noqa: F401 - registers every table on the metadata
from stellarstack.panel.db.base import Base
from stellarstack.panel.db.migrate import context_options

config = context.config
target_metadata = config.attributes.get("target_metadata")
if target_metadata is None:
    target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Render the migrations as SQL for a URL, without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection migrate.py opened."""
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations through stellarstack.panel.db.migrate (or `stellarstack migrate`)"
        )
    context.configure(connection=connection, target_metadata=target_metadata, **context_options())
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
