"""Account fixtures: a real aiosmtpd server on loopback and API clients that speak CSRF."""

from __future__ import annotations

import asyncio
import email
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.support.csrf import speak_csrf

PASSWORD = "correct horse battery staple"


@dataclass
class Inbox:
    """What the SMTP server received, with a way to wait for the next message."""

    messages: list[Message] = field(default_factory=list)
    event: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """aiosmtpd handler: keep the message."""
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    async def wait_for(self, to: str, count: int = 1, timeout: float = 5.0) -> Message:
        """The `count`-th message sent to `to` (fails the test after `timeout` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            found = [m for m in self.messages if m["To"] == to]
            if len(found) >= count:
                return found[count - 1]
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"no message #{count} for {to}; got {[m['To'] for m in self.messages]}"
        )

    def to(self, address: str) -> list[Message]:
        """Messages sent to an address so far."""
        return [m for m in self.messages if m["To"] == address]


def link_in(message: Message) -> str:
    """The panel link in a message (path and query)."""
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(r"https?://[^/\s]+(/auth/\S+)", body.decode())
    assert match, body
    return match.group(1)


def token_in(message: Message) -> str:
    """The token of the link in a message."""
    return link_in(message).split("token=", 1)[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free loopback port, capturing every message."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def inbox(smtp_server: tuple[Inbox, int]) -> Inbox:
    """The captured messages of the SMTP server."""
    return smtp_server[0]


@pytest.fixture
def account_settings(tmp_path: Path, smtp_server: tuple[Inbox, int]) -> PanelSettings:
    """Open sign-up with verification, mail to the test SMTP server (no TLS on loopback)."""
    return PanelSettings(
        data_dir=tmp_path,
        max_body_bytes=64 * 1024,
        signup_policy="open",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[1],
        smtp_security="none",
        public_url="http://testserver",
    )


@dataclass
class AccountPanel:
    """The app under test, its database and a way to make clients."""

    app: FastAPI
    asgi: Any
    database: Database

    def client(self, *, csrf: bool = True, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        """A client from one address; with `csrf`, it repeats the CSRF cookie like app.js does."""
        transport = httpx.ASGITransport(app=self.asgi, client=(ip, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return speak_csrf(client) if csrf else client

    async def add_user(
        self, email_address: str, *, role: Role = Role.USER, name: str | None = None
    ) -> None:
        """An operator-made account with the test password."""
        async with self.database.sessionmaker() as db:
            await create_user(db, email_address, PASSWORD, name=name, role=role)
            await db.commit()

    async def drain_mail(self) -> None:
        """Wait for emails sent in the background."""
        mailer = getattr(self.app.state, "mailer", None)
        if mailer is not None:
            await mailer.drain()


@pytest.fixture
async def account_panel(
    account_settings: PanelSettings, panel_database: Database
) -> AsyncIterator[AccountPanel]:
    """The full panel app (lifespan run) with account settings, on SQLite and PostgreSQL."""
    broker = MemoryBroker()
    app = create_app(account_settings, database=panel_database, broker=broker)
    async with LifespanManager(app) as manager:
        panel = AccountPanel(app, manager.app, panel_database)
        yield panel
        await panel.drain_mail()
    await broker.close()


@pytest.fixture
async def api(account_panel: AccountPanel) -> AsyncIterator[httpx.AsyncClient]:
    """A CSRF-aware API client from 127.0.0.1."""
    async with account_panel.client() as client:
        yield client


async def sign_in(client: httpx.AsyncClient, email_address: str, password: str = PASSWORD) -> None:
    """Sign a client in through the API; fail the test if it does not work."""
    response = await client.post(
        "/api/v1/auth/sign-in", json={"email": email_address, "password": password}
    )
    assert response.status_code == 200, response.text
