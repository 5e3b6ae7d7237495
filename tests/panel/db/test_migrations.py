"""Migrations: they build what the models describe, and moving between revisions loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from stellarstack.panel.db import migrate
from stellarstack.panel.db.base import NAMING_CONVENTION, Base
from stellarstack.panel.db.session import Database, is_sqlite
from tests.panel.db.factories import seed_everything

PREVIOUS = "0001"
# Columns that only exist from the newest revision on; everything else must survive a round trip.
ADDED_AT_HEAD = {
    ("users", "external_id"),
    ("servers", "external_id"),
    ("servers", "status_changed_at"),  # 0005
}


def _snapshot_statements() -> Iterator[tuple[str, sa.Select[Any]]]:
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if (table.name, c.name) not in ADDED_AT_HEAD]
        yield table.name, sa.select(*columns).order_by(table.c.id)


async def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (minus columns newer than the previous revision)."""
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            return {
                name: [tuple(row) for row in await connection.execute(statement)]
                for name, statement in _snapshot_statements()
            }
    finally:
        await database.dispose()


async def foreign_key_violations(url: str) -> list[tuple[Any, ...]]:
    """`PRAGMA foreign_key_check` on SQLite; PostgreSQL enforces foreign keys at all times."""
    if not is_sqlite(url):
        return []
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            result = await connection.exec_driver_sql("PRAGMA foreign_key_check")
            return [tuple(row) for row in result]
    finally:
        await database.dispose()


async def test_upgrade_builds_exactly_what_the_models_describe(database_url: str) -> None:
    assert await migrate.current(database_url) is None
    await migrate.upgrade(database_url)
    assert await migrate.current(database_url) == migrate.head_revision()
    await migrate.check(database_url)


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    await migrate.upgrade(database_url)
    await migrate.upgrade(database_url)
    assert await migrate.current(database_url) == migrate.head_revision()


async def test_replicas_upgrading_at_once_migrate_exactly_once(database_url: str) -> None:
    await asyncio.gather(*(migrate.upgrade(database_url) for _ in range(3)))
    assert await migrate.current(database_url) == migrate.head_revision()
    await migrate.check(database_url)


async def test_check_detects_a_column_the_migrations_lack(database_url: str) -> None:
    await migrate.upgrade(database_url)
    drifted = sa.MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["servers"].append_column(sa.Column("favourite_colour", sa.String(20)))

    with pytest.raises(migrate.SchemaDriftError, match="favourite_colour") as caught:
        await migrate.check(database_url, drifted)
    assert [d[0] for d in caught.value.differences] == ["add_column"]


async def test_check_detects_a_missing_index(database_url: str) -> None:
    await migrate.upgrade(database_url)
    drifted = sa.MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    nodes = drifted.tables["nodes"]
    sa.Index(None, nodes.c.daemon_version)

    with pytest.raises(migrate.SchemaDriftError, match="ix_nodes_daemon_version"):
        await migrate.check(database_url, drifted)


async def test_check_refuses_a_database_behind_head(database_url: str) -> None:
    await migrate.upgrade(database_url, PREVIOUS)
    with pytest.raises(migrate.SchemaDriftError, match="not up to date"):
        await migrate.check(database_url)


async def test_downgrade_then_upgrade_keeps_every_row_and_child_row(database_url: str) -> None:
    await migrate.upgrade(database_url)
    database = Database(database_url)
    async with database.sessionmaker() as session:
        await seed_everything(session)
    await database.dispose()
    before = await snapshot(database_url)
    assert all(before.values()), [name for name, rows in before.items() if not rows]

    await migrate.downgrade(database_url, PREVIOUS)
    assert await migrate.current(database_url) == PREVIOUS
    assert await snapshot(database_url) == before
    assert await foreign_key_violations(database_url) == []

    await migrate.upgrade(database_url)
    assert await snapshot(database_url) == before
    assert await foreign_key_violations(database_url) == []
    await migrate.check(database_url)


async def test_downgrade_to_base_removes_everything_and_upgrade_rebuilds_it(
    database_url: str,
) -> None:
    await migrate.upgrade(database_url)
    await migrate.downgrade(database_url, "base")
    assert await migrate.current(database_url) is None
    database = Database(database_url)
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    await database.dispose()
    assert set(names) <= {"alembic_version"}

    await migrate.upgrade(database_url)
    await migrate.check(database_url)


async def test_sqlite_migration_with_an_orphaned_row_fails_and_changes_nothing(
    tmp_path: Any,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orphan.db'}"
    await migrate.upgrade(url, PREVIOUS)
    # A row whose server does not exist, as an old bug or a manual edit could leave behind.
    raw = sqlite3.connect(make_url(url).database or "")
    raw.execute(
        "INSERT INTO server_variables (id, server_id, key, value) VALUES (?, ?, 'PORT', '1')",
        (uuid.uuid4().hex, uuid.uuid4().hex),
    )
    raw.commit()
    raw.close()

    with pytest.raises(migrate.ForeignKeyViolationError, match="server_variables"):
        await migrate.upgrade(url)
    assert await migrate.current(url) == PREVIOUS


async def test_current_does_not_create_a_missing_sqlite_file(tmp_path: Any) -> None:
    path = tmp_path / "never.db"
    assert await migrate.current(f"sqlite+aiosqlite:///{path}") is None
    assert not path.exists()


def test_migrations_ship_inside_the_package() -> None:
    versions = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("0*.py"))
    assert versions[:2] == ["0001_initial.py", "0002_external_ids.py"]
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert migrate.head_revision() == versions[-1][:4]
