"""The authenticated request path: one read per request, no writes, no wasted round trips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database (the embedded default)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/panel.db"
    await migrate.upgrade(url)
    database = Database(url)
    yield database
    await database.dispose()


async def test_a_signed_in_read_runs_one_query_and_writes_nothing(
    tmp_path: Path, sqlite_database: Database
) -> None:
    async with sqlite_database.sessionmaker() as db:
        user = User(email="ada@example.test", name="Ada", password_hash="x", role=Role.USER)
        db.add(user)
        await db.flush()
        token = await create_session(db, user, ip=None, user_agent=None)
        await db.commit()
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The app's background loops (command reaper, heartbeats) share the engine: keep
        # only what touches the request path's tables.
        if "sessions" in statement or "users" in statement or "api_keys" in statement:
            statements.append(statement.split()[0].upper())

    app = create_app(
        PanelSettings(data_dir=tmp_path), database=sqlite_database, broker=MemoryBroker()
    )
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies={SESSION_COOKIE: token}
        ) as client:
            assert (await client.get("/api/v1/users/me")).status_code == 200  # warm-up
            sa.event.listen(sqlite_database.engine.sync_engine, "before_cursor_execute", record)
            try:
                for _ in range(3):
                    response = await client.get("/api/v1/users/me")
                    assert response.status_code == 200
                    assert response.json()["data"]["email"] == "ada@example.test"
            finally:
                sa.event.remove(sqlite_database.engine.sync_engine, "before_cursor_execute", record)
    assert statements == ["SELECT"] * 3


async def test_a_connection_returned_mid_transaction_is_rolled_back(
    sqlite_database: Database,
) -> None:
    """The pool skips only rollbacks SQLite says are no-ops; an open write is still undone."""
    async with sqlite_database.engine.begin() as connection:
        await connection.execute(sa.text("CREATE TABLE hot_path_probe (x INTEGER)"))

    def write_behind_sqlalchemys_back(sync_connection: sa.Connection) -> bool:
        driver = sync_connection.connection.dbapi_connection
        assert driver is not None
        driver.cursor().execute("INSERT INTO hot_path_probe VALUES (1)")
        return bool(sync_connection.connection.driver_connection.in_transaction)  # type: ignore[union-attr]

    connection = await sqlite_database.engine.connect()
    assert await connection.run_sync(write_behind_sqlalchemys_back)
    await connection.close()  # SQLAlchemy saw no transaction: only the pool reset can undo it
    async with sqlite_database.engine.begin() as other:
        await other.execute(sa.text("INSERT INTO hot_path_probe VALUES (2)"))
        count = (await other.execute(sa.text("SELECT count(*) FROM hot_path_probe"))).scalar()
    assert count == 1
