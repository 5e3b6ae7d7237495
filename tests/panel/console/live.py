"""Helpers for console tests on the real `stellarstack up`: the test game on the process
runtime, an API client signed in as the first admin, a deployed RUNNING server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.game_image import write_game_blueprint, write_game_script
from tests.support.panel import LivePanel, start_embedded_panel
from tests.support.services import free_port

__all__ = ["admin_client", "data", "deploy_running_game", "start_game_panel", "wait_for"]


def start_game_panel(root: Path) -> LivePanel:
    """`stellarstack up` with the test game blueprint and the process runtime (no Docker)."""
    script = write_game_script(root / "game")
    blueprints = root / "blueprints"
    write_game_blueprint(blueprints, str(script))
    return start_embedded_panel(
        root / "data",
        env={"STELLAR_DAEMON_RUNTIME": "process", "STELLAR_BLUEPRINTS_DIR": str(blueprints)},
        timeout=90,
    )


def admin_client(url: str, email: str | None, password: str | None) -> httpx.Client:
    """An API client signed in as the panel's first admin (close it when done)."""
    client = httpx.Client(base_url=url, timeout=30)
    client.headers["Origin"] = url
    response = client.post("/api/v1/auth/sign-in", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = client.cookies.get("stellar_csrf")
    if token:
        client.headers["X-CSRF-Token"] = token
    return client


def data(response: httpx.Response, status: int = 200) -> Any:
    """The envelope's data, after checking the status."""
    assert response.status_code == status, response.text
    return response.json()["data"]


def wait_for(client: httpx.Client, path: str, key: str, wanted: set[str], within: float) -> None:
    """Poll `path` until its `key` is one of `wanted`."""
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = data(client.get(path))[key]
        if value in wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} {key} stayed {value!r}, wanted {wanted}")


def deploy_running_game(client: httpx.Client, name: str = "console live") -> dict[str, Any]:
    """Deploy the test game on the local node and wait until it runs; the server."""
    nodes = data(client.get("/api/v1/nodes"))
    node = next(n for n in nodes if n["name"] == "local")
    wait_for(client, f"/api/v1/nodes/{node['id']}", "status", {"online"}, within=30)
    port = free_port()
    created = data(
        client.post(
            f"/api/v1/nodes/{node['id']}/allocations", json={"ip": "127.0.0.1", "ports": [port]}
        ),
        201,
    )
    rows = created if isinstance(created, list) else created.get("allocations", created)
    allocation = next(a["id"] for a in rows if a["port"] == port)
    body = {
        "name": name,
        "blueprint": "test-game",
        "nodeId": node["id"],
        "allocationIds": [allocation],
    }
    server: dict[str, Any] = data(client.post("/api/v1/servers", json=body), 202)["server"]
    wait_for(client, f"/api/v1/servers/{server['id']}", "status", {"running"}, within=60)
    return server
