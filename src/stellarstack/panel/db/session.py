"""Engines and sessions: SQLite (embedded default) or PostgreSQL, both through asyncio.

Usage::

    database = Database(settings.effective_database_url)
    async with database.sessionmaker() as session:
        session.add(User(email="a@example.com"))
        await session.commit()
    await database.dispose()
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState

__all__ = [
    "POSTGRES_POOL",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Database",
    "configure_sqlite_connection",
    "create_engine",
    "create_sessionmaker",
    "is_sqlite",
]

SQLITE_BUSY_TIMEOUT_MS = 5000

# PostgreSQL pool: enough for a busy replica, bounded so several replicas fit the server's
# max_connections; pre-ping and recycle survive a database restart or an idle-killing proxy.
POSTGRES_POOL: dict[str, Any] = {
    "pool_size": 10,
    "max_overflow": 20,
    "pool_timeout": 30,
    "pool_recycle": 1800,
    "pool_pre_ping": True,
}


def is_sqlite(url: str | URL) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def configure_sqlite_connection(dbapi_connection: Any, *, foreign_keys: bool = True) -> None:
    """Apply the pragmas every SQLite connection needs (WAL, busy timeout, foreign keys).

    Must run before any transaction begins: `foreign_keys` is a no-op inside one.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL makes NORMAL durable against application crashes, and much faster than FULL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    finally:
        cursor.close()


def create_engine(url: str | URL, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for a SQLite or PostgreSQL URL, configured for the panel.

    SQLite connections get WAL, a busy timeout and enforced foreign keys, and the file's
    directory is created if missing. PostgreSQL gets a bounded, pre-pinged pool. Extra
    keyword arguments go to `create_async_engine` and win over these defaults.

    SQLite keeps the driver's transaction handling (BEGIN at the first write): a transaction
    that read first and writes later would otherwise fail with SQLITE_BUSY instead of waiting
    on the busy timeout, which under concurrent requests is worse than PostgreSQL's default
    READ COMMITTED behaviour it then resembles. Migrations use a stricter engine (migrate.py).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # The pool's own reset is `_reset_sqlite_connection`: it skips the rollback that the
        # session's commit or rollback already made (a thread hop per request on aiosqlite).
        sqlite_options: dict[str, Any] = {"pool_reset_on_return": None, **kwargs}
        engine = create_async_engine(parsed, echo=echo, **sqlite_options)
        sa.event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        if sqlite_options["pool_reset_on_return"] is None:
            sa.event.listen(engine.sync_engine.pool, "reset", _reset_sqlite_connection)
        return engine
    options: dict[str, Any] = {**POSTGRES_POOL, **kwargs}
    return create_async_engine(parsed, echo=echo, **options)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    configure_sqlite_connection(dbapi_connection, foreign_keys=True)


def _reset_sqlite_connection(
    dbapi_connection: Any, _record: Any, reset_state: PoolResetState
) -> None:
    """Roll back a connection coming back to the pool, unless SQLite says no transaction is open.

    `in_transaction` is SQLite's own autocommit flag (read without a thread hop on aiosqlite),
    so the skipped rollback is exactly the one that would have done nothing.
    """
    if reset_state.terminate_only:
        return
    driver = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
    if getattr(driver, "in_transaction", True):
        dbapi_connection.rollback()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory; objects stay readable after commit (no implicit async reloads)."""
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """The panel's database: one engine and its session factory."""

    def __init__(self, url: str | URL, *, echo: bool = False, **engine_kwargs: Any) -> None:
        self.url = make_url(url)
        self.engine = create_engine(self.url, echo=echo, **engine_kwargs)
        self.sessionmaker = create_sessionmaker(self.engine)

    @property
    def is_sqlite(self) -> bool:
        """Whether this is the embedded SQLite database."""
        return self.url.get_backend_name() == "sqlite"

    def session(self) -> AsyncSession:
        """A new session; use as `async with database.session() as session:`."""
        return self.sessionmaker()

    async def ping(self) -> float:
        """Round-trip a trivial query and return how long it took, in milliseconds."""
        started = time.perf_counter()
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return (time.perf_counter() - started) * 1000.0

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"<Database {self.url.render_as_string(hide_password=True)}>"
