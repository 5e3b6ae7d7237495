"""What console viewers see of a server's life: install output, deployment steps, stats."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from stellarstack.daemon.console import Viewer, ViewerClosed
from tests.daemon.servers.conftest import Servers


async def frames_until(
    viewer: Viewer, event: str, text: str = "", seconds: float = 15
) -> list[Any]:
    """Decoded frames read until one of `event` whose args mention `text` (fails after seconds)."""
    seen: list[Any] = []
    async with asyncio.timeout(seconds):
        while True:
            try:
                frame = json.loads(await viewer.next())
            except ViewerClosed:
                raise AssertionError(f"viewer closed before {event!r}; saw {seen!r}") from None
            seen.append(frame)
            if frame["event"] == event and text in json.dumps(frame["args"]):
                return seen


async def test_viewers_see_install_output_and_deployment_steps_of_a_reinstall(
    process_servers: Servers, server_id: str
) -> None:
    servers = process_servers
    await servers.manager.create(servers.spec(server_id))
    console = servers.consoles.get(server_id)
    assert console is not None
    viewer = console.join(replay=False)
    install = {"image": "unused", "script": "echo '<b>unpacking</b> world'"}
    reinstall = asyncio.create_task(
        servers.manager.reinstall(servers.spec(server_id, install=install))
    )
    seen = await frames_until(viewer, "install output", "<b>unpacking</b> world")
    steps = [f["args"][0]["stage"] for f in seen if f["event"] == "deployment progress"]
    assert steps[:2] == ["pulling_image", "installing"]
    assert {"event": "status", "args": ["installing"]} in seen
    assert (await reinstall)["status"] == "running"


async def test_viewers_get_stats_about_every_interval(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    console = servers.consoles.get(server_id)
    assert console is not None
    viewer = console.join(replay=False)
    seen = await frames_until(viewer, "stats")
    stats = seen[-1]["args"][0]
    assert set(stats) >= {"cpu", "memory", "memoryLimit", "disk", "networkRx", "uptime"}
