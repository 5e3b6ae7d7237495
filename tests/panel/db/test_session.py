"""Engines and the Database wrapper: connection settings, ping, dispose."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from stellarstack.panel.db.session import SQLITE_BUSY_TIMEOUT_MS, Database, is_sqlite


async def test_ping_reports_milliseconds(database: Database) -> None:
    elapsed = await database.ping()
    assert isinstance(elapsed, float)
    assert 0 < elapsed < 10_000


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'panel.db'}")
    try:
        async with database.engine.connect() as connection:

            async def pragma(name: str) -> object:
                return (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("busy_timeout") == SQLITE_BUSY_TIMEOUT_MS
            assert await pragma("foreign_keys") == 1
    finally:
        await database.dispose()


async def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "stellarstack.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await database.ping()
    finally:
        await database.dispose()
    assert path.is_file()


async def test_dispose_closes_pooled_connections(database: Database) -> None:
    async with database.session() as session:
        assert (await session.execute(sa.text("SELECT 1"))).scalar_one() == 1
    await database.dispose()
    assert database.engine.pool.checkedout() == 0
    # The engine stays usable after dispose: it opens new connections on demand.
    assert await database.ping() > 0


def test_repr_hides_the_password() -> None:
    database = Database("postgresql+psycopg://stellar:hunter2@db.internal:5432/panel")
    assert "hunter2" not in repr(database)
    assert not database.is_sqlite


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:///x.db", True),
        ("sqlite+aiosqlite://", True),
        ("postgresql+psycopg://u@h/db", False),
    ],
)
def test_is_sqlite(url: str, expected: bool) -> None:
    assert is_sqlite(url) is expected
