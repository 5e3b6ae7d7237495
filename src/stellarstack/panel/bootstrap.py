"""First start: the data directory, the secret key, the schema and the first admin."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from stellarstack.broker import BrokerUnavailable, create_broker
from stellarstack.panel.auth.service import count_users, create_user
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings

__all__ = [
    "FIRST_ADMIN_EMAIL",
    "AdminCredentials",
    "StartupError",
    "ensure_data_dir",
    "ensure_first_admin",
    "preflight",
    "safe_url",
]

FIRST_ADMIN_EMAIL = "admin@stellarstack.local"


class StartupError(Exception):
    """The panel cannot start; the message is one sentence for the operator."""


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """The first admin's credentials, shown once."""

    email: str
    password: str


def safe_url(url: str) -> str:
    """A database or Redis URL with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def ensure_data_dir(settings: PanelSettings) -> Path:
    """Create the data directory (mode 0700) and the secret key on first start."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    key_file = data_dir / "secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    if not settings.secret_key:
        settings.secret_key = key_file.read_text().strip()
    return data_dir


async def ensure_first_admin(database: Database) -> AdminCredentials | None:
    """Create the first admin with a random password when there are no users at all."""
    async with database.sessionmaker() as db:
        if await count_users(db) > 0:
            return None
        password = secrets.token_urlsafe(12)
        await create_user(db, FIRST_ADMIN_EMAIL, password, name="Admin", role=Role.SUPER_ADMIN)
        await db.commit()
    return AdminCredentials(FIRST_ADMIN_EMAIL, password)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


async def _check_database(settings: PanelSettings, *, require_head: bool) -> None:
    url = settings.effective_database_url
    try:
        database = Database(url)
    except (ArgumentError, ValueError, ImportError) as exc:
        raise StartupError(
            f"DATABASE_URL is not a usable database URL ({safe_url(url)}): {_first_line(exc)}."
        ) from exc
    try:
        try:
            await asyncio.wait_for(database.ping(), settings.dependency_timeout * 3)
        except Exception as exc:
            raise StartupError(
                f"Cannot connect to the database at {safe_url(url)}: {_first_line(exc)}."
            ) from exc
        if require_head:
            at, head = await migrate.current(url), migrate.head_revision()
            if at != head:
                raise StartupError(
                    f"The database schema is at revision {at or 'none'} but this version needs "
                    f"{head}: run `stellarstack migrate` first."
                )
    finally:
        await database.dispose()


async def _check_broker(settings: PanelSettings) -> None:
    if not settings.redis_url:
        return
    try:
        broker = create_broker(settings.redis_url)
    except ValueError as exc:
        raise StartupError(f"REDIS_URL is not a usable Redis URL: {_first_line(exc)}.") from exc
    try:
        await asyncio.wait_for(broker.ping(), settings.dependency_timeout * 3)
    except (BrokerUnavailable, TimeoutError, OSError) as exc:
        raise StartupError(
            f"Cannot connect to Redis at {safe_url(settings.redis_url)}: {_first_line(exc)}."
        ) from exc
    finally:
        await broker.close()


async def preflight(settings: PanelSettings, *, require_head: bool = True) -> None:
    """Fail fast, with one clear sentence, when the database or Redis is unusable."""
    await _check_database(settings, require_head=require_head)
    await _check_broker(settings)
