"""Floods the console must hold: many idle sockets, a message flood, a fast game, slow viewers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket as sockets
import time
from pathlib import Path

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

from tests.daemon.test_console import closed_with, console_daemon
from tests.support.services import DockerEngine

IDLE_SOCKETS = 1000
GAME_LINES = 20_000
PAD = "x" * 160


async def test_a_thousand_idle_sockets_all_get_the_output_and_the_daemon_stays_healthy(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    limits = {
        "console_max_sockets_per_ip": IDLE_SOCKETS + 10,
        "console_max_sockets_per_server": IDLE_SOCKETS + 10,
    }
    async with console_daemon(docker_engine, tmp_path, **limits) as running:
        server_id = await running.server('while read line; do echo "got:$line"; done')
        token = running.token(server_id)

        async def idle() -> ClientConnection:
            socket = await connect(running.url(server_id), compression=None, proxy=None)
            await socket.send(json.dumps({"event": "auth", "args": [token]}))
            return socket

        opened: list[ClientConnection] = []
        try:
            async with asyncio.timeout(60):
                for _batch in range(IDLE_SOCKETS // 100):
                    opened += await asyncio.gather(*(idle() for _ in range(100)))
            async with running.viewer(server_id) as writer:
                await writer.send("send command", "to-everyone")
                await writer.lines_until("got:to-everyone")
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{running.port}/health")
            assert health.status_code == 200

            async def heard(socket: ClientConnection) -> bool:
                async with asyncio.timeout(30):
                    while True:
                        message = json.loads(await socket.recv())
                        if "got:to-everyone" in message["args"]:
                            return True

            results = await asyncio.gather(*(heard(s) for s in opened))
            assert sum(results) == IDLE_SOCKETS
            assert running.agent.consoles.get(server_id).viewers == IDLE_SOCKETS  # type: ignore[union-attr]
        finally:
            await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)


async def test_a_message_flood_closes_that_socket_and_spares_the_others(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    async with console_daemon(docker_engine, tmp_path) as running:
        server_id = await running.server('while read line; do echo "got:$line"; done')
        async with running.viewer(server_id) as flooder, running.viewer(server_id) as bystander:
            began = time.monotonic()
            with contextlib.suppress(websockets.ConnectionClosed):
                for n in range(5000):
                    await flooder.send("send command", f"flood-{n}")
            code, _ = await closed_with(flooder.socket)
            elapsed = time.monotonic() - began
            await bystander.send("send command", "still-served")
            seen = await bystander.lines_until("got:still-served")
        assert code == 4429
        floods = {line for line in seen + bystander.lines() if line.startswith("got:flood-")}
        # The bucket lets through its burst plus the refill rate: nowhere near 5,000.
        assert 0 < len(floods) <= 10 + 10 * elapsed + 2


async def test_a_20k_lines_per_second_game_reaches_a_fast_viewer_whole_while_a_slow_one_sheds(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    script = (
        "read go; b=0; while [ $b -lt 10 ]; do i=0; while [ $i -lt 2000 ]; do "
        f'echo "line $((b*2000+i)) {PAD}"; i=$((i+1)); done; b=$((b+1)); usleep 100000; done; '
        "echo game-done; sleep 600"
    )
    async with console_daemon(
        docker_engine, tmp_path, console_viewer_buffer_bytes=256 * 1024
    ) as running:
        server_id = await running.server(script)
        slow_socket = sockets.socket()
        slow_socket.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        slow_socket.connect(("127.0.0.1", running.port))
        async with (
            running.viewer(server_id) as fast,
            running.viewer(server_id, sock=slow_socket, max_queue=1, compression=None) as slow,
        ):
            began = time.monotonic()
            await fast.send("send command", "go")
            fast_lines = await fast.lines_until("game-done", seconds=30)
            fast_seconds = time.monotonic() - began
            await asyncio.sleep(0.5)  # the slow viewer has read nothing all this time
            slow_lines = await slow.lines_until("game-done", seconds=30)
        game = [line for line in fast_lines if line.startswith("line ")]
        assert game == [f"line {n} {PAD}" for n in range(GAME_LINES)]
        assert fast_seconds < 10
        notices = [args[0] for event, args in slow.events if event == "daemon message"]
        assert notices and all("could not keep up" in notice for notice in notices)
        shed = [line for line in slow_lines if line.startswith("line ")]
        assert len(shed) < GAME_LINES
        numbers = [int(line.split()[1]) for line in shed]
        assert numbers == sorted(numbers)  # what a slow viewer keeps stays in order
