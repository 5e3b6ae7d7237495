"""The console end to end on the real `stellarstack up`: a token from the API opens the
in-process daemon's WebSocket, output streams, commands echo, power works, forgeries fail.

The embedded daemon runs the test game (tests/support/game_image.py) on the process runtime,
so no Docker is needed; everything binds to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stellarstack.protocol.tokens import ConsoleClaims, generate_signing_key, sign
from tests.panel.console.live import admin_client, data, deploy_running_game, start_game_panel
from tests.panel.console.live import wait_for as _wait
from tests.support.panel import LivePanel


@pytest.fixture(scope="module")
def console_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePanel]:
    """`stellarstack up` with the test game blueprint and the process runtime."""
    panel = start_game_panel(tmp_path_factory.mktemp("console-live"))
    try:
        yield panel
    finally:
        panel.stop()


@pytest.fixture(scope="module")
def admin(console_panel: LivePanel) -> Iterator[httpx.Client]:
    """The first admin, signed in over the API."""
    client = admin_client(
        console_panel.url, console_panel.admin_email, console_panel.admin_password
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def running_server(admin: httpx.Client) -> dict[str, Any]:
    """A deployed test game, RUNNING on the local node."""
    return deploy_running_game(admin)


class Client:
    """A browser-like console client that remembers every event it read."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[tuple[str, list[Any]]] = []

    async def send(self, event: str, *args: Any) -> None:
        """Send one envelope."""
        await self.socket.send(json.dumps({"event": event, "args": list(args)}))

    async def until(self, event: str, contains: str = "", seconds: float = 15) -> list[Any]:
        """Read until `event` arrives (with `contains` in its text); its args."""
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await self.socket.recv())
                args: list[Any] = message["args"]
                self.events.append((message["event"], args))
                if message["event"] == event and contains in json.dumps(args):
                    return args


def _grant(admin: httpx.Client, server_id: str) -> dict[str, Any]:
    grant: dict[str, Any] = data(admin.get(f"/api/v1/servers/{server_id}/console-token"))
    return grant


def test_the_local_node_advertises_its_daemon_on_loopback(
    admin: httpx.Client, console_panel: LivePanel, running_server: dict[str, Any]
) -> None:
    grant = _grant(admin, running_server["id"])
    assert grant["socketUrl"].startswith("ws://127.0.0.1:")
    assert grant["socketUrl"].endswith(f"/api/servers/{running_server['id']}/ws")
    assert grant["nodePort"] != console_panel.port
    health = httpx.get(f"http://127.0.0.1:{grant['nodePort']}/health", timeout=5)
    assert health.json()["nodeId"] == grant["nodeId"]


async def test_a_token_from_the_api_opens_the_console_and_commands_echo(
    admin: httpx.Client, console_panel: LivePanel, running_server: dict[str, Any]
) -> None:
    grant = _grant(admin, running_server["id"])
    async with connect(grant["socketUrl"], origin=console_panel.url) as socket:  # type: ignore[arg-type]
        client = Client(socket)
        await client.send("auth", grant["token"])
        permissions = (await client.until("auth success"))[0]
        assert permissions["canWrite"] is True
        await client.send("send logs")
        await client.until("console output", "Server ready on port")
        await client.send("send command", "hello console")
        await client.until("console output", "> hello console")
        await client.send("send stats")
        stats = (await client.until("stats"))[0]
        assert stats["memory"] >= 0


async def test_forged_tokens_and_foreign_origins_are_refused(
    admin: httpx.Client, console_panel: LivePanel, running_server: dict[str, Any]
) -> None:
    grant = _grant(admin, running_server["id"])
    forged = sign(
        ConsoleClaims.issue(
            node_id=grant["nodeId"], server_id=grant["serverId"], user_id="u", can_write=True
        ),
        generate_signing_key(),
    )
    async with connect(grant["socketUrl"], origin=console_panel.url) as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"event": "auth", "args": [forged]}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    other_server = grant["socketUrl"].replace(grant["serverId"], "not-this-server")
    async with connect(other_server, origin=console_panel.url) as socket:  # type: ignore[arg-type]
        await socket.send(json.dumps({"event": "auth", "args": [grant["token"]]}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with pytest.raises(InvalidStatus) as refused:
        async with connect(grant["socketUrl"], origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


async def test_kill_over_the_socket_reports_the_status_change(
    admin: httpx.Client, console_panel: LivePanel, running_server: dict[str, Any]
) -> None:
    grant = _grant(admin, running_server["id"])
    async with connect(grant["socketUrl"], origin=console_panel.url) as socket:  # type: ignore[arg-type]
        client = Client(socket)
        await client.send("auth", grant["token"])
        await client.until("auth success")
        await client.send("set state", "kill")
        await client.until("status", "stopped")
    _wait(admin, f"/api/v1/servers/{running_server['id']}", "status", {"offline"}, within=30)
