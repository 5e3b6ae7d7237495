"""End to end on the real `stellarstack up`: deploy through the API, reach RUNNING, stop cleanly.

The embedded panel runs its in-process daemon on the process runtime here, so these tests
need no Docker: Luanti comes from Debian's `minetest-server` (its shipped blueprint), the test
game is a shell script (tests/support/game_image.py). Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.game_image import write_game_blueprint, write_game_script
from tests.support.panel import LivePanel, start_embedded_panel
from tests.support.services import free_port, in_ci

LUANTI = shutil.which("minetestserver", path="/usr/games:/usr/local/games:/usr/bin")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def game_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePanel]:
    root = tmp_path_factory.mktemp("live-deploy")
    script = write_game_script(root / "game")
    blueprints = root / "blueprints"
    write_game_blueprint(blueprints, str(script))
    panel = start_embedded_panel(
        root / "data",
        env={
            "STELLAR_DAEMON_RUNTIME": "process",
            "STELLAR_BLUEPRINTS_DIR": str(blueprints),
        },
        timeout=90,
    )
    try:
        yield panel
    finally:
        panel.stop()


@pytest.fixture
def admin(game_panel: LivePanel) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=game_panel.url, timeout=30) as client:
        client.headers["Origin"] = game_panel.url
        response = client.post(
            "/api/v1/auth/sign-in",
            json={"email": game_panel.admin_email, "password": game_panel.admin_password},
        )
        assert response.status_code == 200, response.text
        token = client.cookies.get("stellar_csrf")
        if token:
            client.headers["X-CSRF-Token"] = token
        yield client


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _local_node(client: httpx.Client) -> dict[str, Any]:
    nodes = _data(client.get("/api/v1/nodes"))
    return next(n for n in nodes if n["name"] == "local")


def _allocation(client: httpx.Client, node_id: str, port: int) -> str:
    created = _data(
        client.post(
            f"/api/v1/nodes/{node_id}/allocations", json={"ip": "127.0.0.1", "ports": [port]}
        ),
        201,
    )
    rows = created if isinstance(created, list) else created.get("allocations", created)
    return str(next(a["id"] for a in rows if a["port"] == port))


def _wait_status(client: httpx.Client, server_id: str, wanted: set[str], within: float) -> str:
    deadline = time.monotonic() + within
    status = ""
    while time.monotonic() < deadline:
        server = _data(client.get(f"/api/v1/servers/{server_id}"))
        status = server["status"]
        if status in wanted:
            return status
        assert status not in {"install_failed", "crashed"}, repr(server)
        time.sleep(0.25)
    raise AssertionError(f"server {server_id} stayed {status!r}, wanted {wanted}")


def _deploy(client: httpx.Client, blueprint: str, port: int, **extra: Any) -> dict[str, Any]:
    node = _local_node(client)
    allocation = _allocation(client, node["id"], port)
    body = {
        "name": f"{blueprint} live",
        "blueprint": blueprint,
        "nodeId": node["id"],
        "allocationIds": [allocation],
        **extra,
    }
    created = _data(client.post("/api/v1/servers", json=body), 202)
    server: dict[str, Any] = created["server"]
    return server


def test_the_test_game_deploys_runs_and_stops_on_the_process_runtime(
    admin: httpx.Client,
) -> None:
    port = free_port()
    started = time.monotonic()
    server = _deploy(admin, "test-game", port)
    _wait_status(admin, server["id"], {"running"}, within=60)
    deployed_in = time.monotonic() - started
    # It serves its port (busybox httpd) once RUNNING, on loopback only.
    if shutil.which("busybox"):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200

    _data(admin.post(f"/api/v1/servers/{server['id']}/stop", json={}), 202)
    _wait_status(admin, server["id"], {"offline"}, within=30)
    print(f"\ntest game: POST /servers -> RUNNING in {deployed_in:.2f} s (process runtime)")

    gone = admin.delete(f"/api/v1/servers/{server['id']}")
    assert gone.status_code in (200, 204), gone.text
    assert admin.get(f"/api/v1/servers/{server['id']}").status_code == 404


def test_luanti_from_its_shipped_blueprint_reaches_running_and_stops_cleanly(
    admin: httpx.Client,
) -> None:
    if LUANTI is None:
        if in_ci():
            pytest.fail("minetest-server is not installed (apt install minetest-server)")
        pytest.skip("minetest-server is not installed")
    port = _free_udp_port()
    server = _deploy(admin, "luanti", port)
    started = time.monotonic()
    _wait_status(admin, server["id"], {"running"}, within=120)
    print(f"\nluanti: RUNNING after {time.monotonic() - started:.2f} s")

    _data(admin.post(f"/api/v1/servers/{server['id']}/stop", json={}), 202)
    _wait_status(admin, server["id"], {"offline"}, within=60)
    gone = admin.delete(f"/api/v1/servers/{server['id']}")
    assert gone.status_code in (200, 204), gone.text
