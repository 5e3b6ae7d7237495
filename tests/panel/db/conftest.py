"""A migrated database per test, cloned from one migrated template per engine (fast).

Migrating takes a few hundred milliseconds; cloning takes a few. Migration tests themselves use
the plain `database_url` fixture, which starts from an empty database.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from tests.support.services import PostgresServer


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, never used directly."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    await migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
async def postgres_template(postgres_server: PostgresServer) -> str:
    """A PostgreSQL database migrated to head, used only as CREATE DATABASE … TEMPLATE."""
    name = postgres_server.create_database("template")
    await migrate.upgrade(postgres_server.url(name))
    return name


def _clone_postgres(server: PostgresServer, template: str) -> str:
    clone = f"clone_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{clone}" TEMPLATE "{template}"'))
    engine.dispose()
    return server.url(clone)


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh database at head, on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    server = request.getfixturevalue("postgres_server")
    return _clone_postgres(server, request.getfixturevalue("postgres_template"))


@pytest.fixture
async def database(migrated_url: str) -> AsyncIterator[Database]:
    """A `Database` on a fresh database at head, on each engine."""
    database = Database(migrated_url)
    yield database
    await database.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the PostgreSQL half of `migrated_url` tests (the root hook only sees fixture names)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("migrated_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
