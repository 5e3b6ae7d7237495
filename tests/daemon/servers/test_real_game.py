"""A real game on the process runtime: Luanti (Debian's minetest-server) installed, run, stopped."""

from __future__ import annotations

import shutil

from tests.daemon.servers.conftest import Servers
from tests.support.services import free_port, require

LUANTI = shutil.which("minetestserver", path="/usr/games:/usr/bin:/usr/local/bin")
"""Debian installs the server in /usr/games, which is not always on PATH."""


async def test_luanti_reaches_running_and_stops_cleanly(
    process_servers: Servers, server_id: str
) -> None:
    require(LUANTI is not None, "minetest-server is not installed (Debian `minetest-server`)")
    servers = process_servers
    port = free_port()
    start = (
        'exec minetestserver --port "$SERVER_PORT" --gameid minetest --world world '
        "--config minetest.conf"
    )
    spec = servers.spec(
        server_id,
        command=["sh", "-c", start],
        binaries=["minetestserver"],  # found in /usr/games, as the runtime searches it
        limits={"memoryMb": 1024, "diskMb": 2048, "pids": 256},
        ports=[{"ip": "127.0.0.1", "port": port, "protocol": "udp", "primary": True}],
        stop={"signal": "SIGINT", "timeout": 30},
        ready={"type": "log", "pattern": "listening on", "timeout": 120},
        configFiles=[
            {
                "path": "minetest.conf",
                "parser": "properties",
                "set": {"port": port, "bind_address": "127.0.0.1", "server_announce": False},
            }
        ],
    )
    result = await servers.manager.create(spec)
    assert result["status"] == "running"
    logs = "\n".join(line.text for line in await servers.runtime.logs(server_id, tail=50))
    assert f"listening on 127.0.0.1:{port}" in logs
    stopped = await servers.manager.power(server_id, "stop")
    assert stopped["exitCode"] == 0
    assert (servers.store.volume_dir(server_id) / "world" / "world.mt").exists()
    assert "crashed" not in await servers.status_names(server_id)
