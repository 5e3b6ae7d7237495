"""The console end to end on the real `stellarstack up`: a token from the API opens the
in-process daemon's WebSocket, output streams, commands echo, power works, forgeries fail.

The embedded daemon runs the test game (tests/support/game_image.py) on the process runtime,
so no Docker is needed; everything binds to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from stellarstack.protocol.tokens import ConsoleClaims, generate_signing_key, sign
from tests.support.game_image import write_game_blueprint, write_game_script
from tests.support.panel import LivePanel, start_embedded_panel
from tests.support.services import free_port


@pytest.fixture(scope="module")
def console_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePanel]:
    """`stellarstack up` with the test game blueprint and the process runtime."""
    root = tmp_path_factory.mktemp("console-live")
    script = write_game_script(root / "game")
    blueprints = root / "blueprints"
    write_game_blueprint(blueprints, str(script))
    panel = start_embedded_panel(
        root / "data",
        env={"STELLAR_DAEMON_RUNTIME": "process", "STELLAR_BLUEPRINTS_DIR": str(blueprints)},
        timeout=90,
    )
    try:
        yield panel
    finally:
        panel.stop()


@pytest.fixture(scope="module")
def admin(console_panel: LivePanel) -> Iterator[httpx.Client]:
    """The first admin, signed in over the API."""
    with httpx.Client(base_url=console_panel.url, timeout=30) as client:
        client.headers["Origin"] = console_panel.url
        response = client.post(
            "/api/v1/auth/sign-in",
            json={"email": console_panel.admin_email, "password": console_panel.admin_password},
        )
        assert response.status_code == 200, response.text
        token = client.cookies.get("stellar_csrf")
        if token:
            client.headers["X-CSRF-Token"] = token
        yield client


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _wait(client: httpx.Client, path: str, key: str, wanted: set[str], within: float) -> None:
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = _data(client.get(path))[key]
        if value in wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} {key} stayed {value!r}, wanted {wanted}")


@pytest.fixture(scope="module")
def running_server(admin: httpx.Client) -> dict[str, Any]:
    """A deployed test game, RUNNING on the local node."""
    nodes = _data(admin.get("/api/v1/nodes"))
    node = next(n for n in nodes if n["name"] == "local")
    _wait(admin, f"/api/v1/nodes/{node['id']}", "status", {"online"}, within=30)
    port = free_port()
    created = _data(
        admin.post(
            f"/api/v1/nodes/{node['id']}/allocations", json={"ip": "127.0.0.1", "ports": [port]}
        ),
        201,
    )
    rows = created if isinstance(created, list) else created.get("allocations", created)
    allocation = next(a["id"] for a in rows if a["port"] == port)
    body = {
        "name": "console live",
        "blueprint": "test-game",
        "nodeId": node["id"],
        "allocationIds": [allocation],
    }
    server: dict[str, Any] = _data(admin.post("/api/v1/servers", json=body), 202)["server"]
    _wait(admin, f"/api/v1/servers/{server['id']}", "status", {"running"}, within=60)
    return server


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
                found = (message["event"], message["args"])
                self.events.append(found)
                if found[0] == event and contains in json.dumps(found[1]):
                    return found[1]


def _grant(admin: httpx.Client, server_id: str) -> dict[str, Any]:
    grant: dict[str, Any] = _data(admin.get(f"/api/v1/servers/{server_id}/console-token"))
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
    with pytest.raises(Exception, match="403|1008|rejected|closed"):
        async with connect(grant["socketUrl"], origin="http://evil.example") as socket:  # type: ignore[arg-type]
            await socket.send(json.dumps({"event": "auth", "args": [grant["token"]]}))
            async with asyncio.timeout(10):
                await socket.recv()


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
