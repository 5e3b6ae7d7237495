"""Web fixtures: the full panel app over ASGI, with one admin and one plain user."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from stellarstack.broker import MemoryBroker
from stellarstack.panel import web
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.support.csrf import speak_csrf

PASSWORD = "correct horse battery staple"
HOSTILE_NAME = "<script>alert('name')</script>"


@dataclass(frozen=True, slots=True)
class Accounts:
    """Who can sign in to the test panel."""

    admin_email: str = "admin@example.test"
    user_email: str = "player@example.test"
    hostile_email: str = "hostile@example.test"
    suspended_email: str = "gone@example.test"
    password: str = PASSWORD


@pytest.fixture(scope="session")
async def template_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the accounts, made once (hashing and migrating are slow)."""
    path = tmp_path_factory.mktemp("web-template") / "web.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate.upgrade(url)
    database = Database(url)
    accounts = Accounts()
    async with database.sessionmaker() as db:
        await create_user(db, accounts.admin_email, PASSWORD, name="Ada Admin", role=Role.ADMIN)
        await create_user(db, accounts.user_email, PASSWORD, name="Pat Player")
        await create_user(db, accounts.hostile_email, PASSWORD, name=HOSTILE_NAME)
        gone = await create_user(db, accounts.suspended_email, PASSWORD, name="Gone")
        gone.suspended = True
        await db.commit()
    await database.dispose()
    return path


@pytest.fixture
async def panel_database(template_database: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """A private copy of the template database for one test (pages only need SQLite)."""
    path = tmp_path / "web.db"
    shutil.copyfile(template_database, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    yield database
    await database.dispose()


@pytest.fixture
def accounts(panel_database: Database) -> Accounts:
    """An admin, a plain user, a user whose name is HTML, and a suspended user."""
    return Accounts()


@pytest.fixture
async def web_client(
    panel_settings: PanelSettings, panel_database: Database, accounts: Accounts
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (asks for HTML, does not follow redirects) on the full app."""
    broker = MemoryBroker()
    app = create_app(panel_settings, database=panel_database, broker=broker)
    web.install_error_pages(app)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"accept": "text/html"}
        ) as client:
            yield speak_csrf(client)
    await broker.close()


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    """Sign the client in through the form; fail the test if it does not work."""
    response = await client.post("/auth/signin", data={"email": email, "password": password})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"
