"""Start/stop overhead of the daemon's server handlers beside raw Engine API start/stop.

Same container, same run: the floor is `docker start` / `docker stop -t 10` as bare Engine
API calls (aiodocker, no CLI process in the way); ours is `ServerManager.power("start")` /
`power("stop")` (power lock, console attach, status events, exit watcher, stats loop). The
server is the test game image with no ready check and a SIGTERM stop, so both sides wait
for the same things. Also prints daemon-side `server.create` → RUNNING (image present,
ready on the game's log line).

    .venv/bin/python bench/server_power.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiodocker
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.game_image import GAME_IMAGE, GAME_SCRIPT_PATH, build_game_image
from tests.support.services import free_port, start_docker

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.console import ConsoleHub, ConsoleLimits
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import DockerRuntime
from stellarstack.daemon.servers.manager import ServerManager
from stellarstack.daemon.servers.store import SpecStore
from stellarstack.protocol.servers import ServerSpec

TARGET_RATIO = 1.5
"""Our start/stop may cost at most this much of the raw engine call (ratio of medians)."""


def game_spec(server_id: str, *, ready: bool) -> ServerSpec:
    """The test game on a free loopback port, stopped by SIGTERM."""
    return ServerSpec.model_validate(
        {
            "serverId": server_id,
            "image": GAME_IMAGE,
            "command": ["sh", GAME_SCRIPT_PATH],
            "limits": {"memoryMb": 128, "diskMb": 256, "pids": 64},
            "ports": [{"ip": "127.0.0.1", "port": free_port(), "primary": True}],
            "stop": {"signal": "SIGTERM", "timeout": 10},
            "ready": {"type": "log", "pattern": "Server ready on port"} if ready else None,
        }
    )


async def raw_round(docker: aiodocker.Docker, name: str) -> tuple[float, float]:
    """One raw start and stop of the container (ms each)."""
    container = await docker.containers.get(name)
    began = time.perf_counter()
    await container.start()
    started = time.perf_counter()
    await container.stop(t=10)
    stopped = time.perf_counter()
    return (started - began) * 1000, (stopped - started) * 1000


async def our_round(manager: ServerManager, server_id: str) -> tuple[float, float]:
    """One start and stop through the server manager (ms each)."""
    began = time.perf_counter()
    await manager.power(server_id, "start")
    started = time.perf_counter()
    await manager.power(server_id, "stop")
    stopped = time.perf_counter()
    return (started - began) * 1000, (stopped - started) * 1000


async def main(rounds: int) -> None:
    """Measure both sides on one container and print medians and ratios."""
    engine, reason = start_docker()
    if engine is None:
        raise SystemExit(f"no Docker Engine: {reason}")
    problem = build_game_image(engine.host)
    if problem:
        raise SystemExit(problem)
    runtime = DockerRuntime(engine.host, node_id=f"bench-{uuid.uuid4().hex[:8]}")
    broker = MemoryBroker()
    consoles = ConsoleHub(ConsoleLimits())
    consoles.bind(runtime)
    try:
        with tempfile.TemporaryDirectory(prefix="stellar-bench-") as tmp:
            manager = ServerManager(
                runtime, SpecStore(Path(tmp)), EventPublisher(broker, "bench"), consoles
            )
            deploy_id = f"bench-{uuid.uuid4().hex[:8]}"
            began = time.perf_counter()
            await manager.create(game_spec(deploy_id, ready=True))
            deploy_ms = (time.perf_counter() - began) * 1000
            await manager.delete(deploy_id)

            server_id = f"bench-{uuid.uuid4().hex[:8]}"
            await manager.create(
                game_spec(server_id, ready=False).model_copy(update={"start_on_completion": False})
            )
            raw: list[tuple[float, float]] = []
            ours: list[tuple[float, float]] = []
            async with aiodocker.Docker(url=engine.host) as docker:
                name = DockerRuntime.container_name(server_id)
                await raw_round(docker, name)  # warm-up
                await our_round(manager, server_id)
                for _ in range(rounds):  # interleaved, so drift hits both sides alike
                    raw.append(await raw_round(docker, name))
                    ours.append(await our_round(manager, server_id))
            await manager.delete(server_id)
            await manager.close()
    finally:
        await consoles.close()
        await runtime.close()
        await broker.close()
        engine.stop()
    print(f"server power on Docker, {rounds} rounds on one container (medians)")
    for index, action in enumerate(("start", "stop")):
        floor = statistics.median(r[index] for r in raw)
        mine = statistics.median(o[index] for o in ours)
        ratio = mine / floor
        verdict = "ok" if ratio <= TARGET_RATIO else "ABOVE TARGET"
        print(
            f"  {action:<5} raw engine API {floor:8.1f} ms   handler {mine:8.1f} ms   "
            f"ratio {ratio:.2f}x (target ≤ {TARGET_RATIO}x) {verdict}"
        )
    print(f"  server.create → RUNNING (image present, log ready check) {deploy_ms:8.1f} ms")


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
