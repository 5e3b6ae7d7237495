"""Console output throughput and command round trip: the daemon's hub against raw floors.

DESIGN.md §7: "console output, container → browser socket: floor raw pipe → `websockets`
sender (~800k lines/s here with 20 ms batches); target ≥ 0.5x floor" and "console command
round trip: floor raw websocket echo; p99 < 5 ms on loopback". Both paths here use a local
process (`yes | head`, `cat`) so the figures compare the console machinery, not Docker.
A third line, "runtime", reads the process runtime's own output stream with no hub and no
socket, so each run says how much of the gap is the runtime and how much the console.

Measured 2026-11-28 (2 shared cores, process runtime): output floor ~190k lines/s, runtime
alone ~53k, hub ~49k (0.92x of the runtime alone, 0.25x of the floor); profiling puts the
runtime's per-line asyncio.Queue (`runtime/subscribers.py`) and its log tail on top. Command
round trip p50 ~52 ms, of which ~50 ms sits between `send_input` and the hub seeing the echo:
the process runtime tails its log every 50 ms once idle (`poll_interval`); websocket → stdin
and hub → client are ~0.3 and ~0.5 ms. The standalone "runtime" round trip can look faster
than that (the lone follower often catches the echo while still in its busy phase).

    .venv/bin/python bench/console_throughput.py [LINES] [ROUND_TRIPS]
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.services import free_port

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.app import create_app
from stellarstack.daemon.runtime import ContainerSpec, ProcessRuntime
from stellarstack.daemon.runtime.output import LineSplitter
from stellarstack.protocol.tokens import ConsoleClaims, generate_signing_key, sign
from stellarstack.settings import DaemonSettings

LINE = "[12:00:00] [Server thread/INFO]: \x1b[32mPlayer joined the game\x1b[0m"
BATCH_SECONDS = 0.020
TARGET_RATIO, TARGET_P99_MS = 0.5, 5.0
KEY = generate_signing_key()


def spew(lines: int) -> list[str]:
    """A shell command printing `lines` identical game-like lines as fast as it can."""
    return ["sh", "-c", f"yes '{LINE}' | head -n {lines}"]


async def count_lines(socket: ClientConnection, wanted: int) -> int:
    """Read console frames until `wanted` lines arrived (or the stream ends); lines seen."""
    seen = 0
    while seen < wanted:
        message = json.loads(await socket.recv())
        if message["event"] == "console output":
            seen += len(message["args"])
    return seen


async def floor_throughput(lines: int) -> float:
    """Raw pipe → line split → 20 ms batches → `websockets` sender; lines/s at the client."""

    async def handler(socket: ServerConnection) -> None:
        proc = await asyncio.create_subprocess_exec(*spew(lines), stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        splitter, batch, last = LineSplitter(), [], time.monotonic()
        while chunk := await proc.stdout.read(65536):
            batch += splitter.feed(chunk)
            if time.monotonic() - last >= BATCH_SECONDS:
                await socket.send(json.dumps({"event": "console output", "args": batch}))
                batch, last = [], time.monotonic()
        batch += splitter.flush()
        await socket.send(json.dumps({"event": "console output", "args": batch}))
        await proc.wait()
        await socket.wait_closed()

    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    async with (
        serve(handler, "127.0.0.1", port, compression=None),
        connect(url, compression=None, max_size=None) as client,
    ):
        started = time.perf_counter()
        got = await count_lines(client, lines)
        return got / (time.perf_counter() - started)


@asynccontextmanager
async def daemon(workdir: Path) -> AsyncIterator[tuple[Agent, int]]:
    """A daemon (process runtime, no throttle) with its console socket on a free port."""
    port = free_port()
    settings = DaemonSettings(
        data_dir=workdir / "daemon",
        node_id="bench-node",
        runtime="process",
        heartbeat_interval=3600,
        console_max_lines_per_second=0,
        console_viewer_buffer_bytes=512 << 20,
        console_batch_ms=BATCH_SECONDS * 1000,
        console_commands_per_second=100_000,
        console_messages_per_second=100_000,
    )
    runtime = ProcessRuntime()
    agent = Agent(settings, MemoryBroker(), runtime=runtime)
    await agent.start()
    app = create_app(agent)
    app.state.console.use_public_key(KEY.public_key())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield agent, port
    finally:
        server.should_exit = True
        await task
        await agent.stop()
        await runtime.close()


async def viewer(port: int, server_id: str) -> ClientConnection:
    """An authenticated console socket."""
    token = sign(
        ConsoleClaims.issue(
            node_id="bench-node", server_id=server_id, user_id="bench", can_write=True
        ),
        KEY,
    )
    url = f"ws://127.0.0.1:{port}/api/servers/{server_id}/ws"
    socket = await connect(url, compression=None, max_size=None, proxy=None)
    await socket.send(json.dumps({"event": "auth", "args": [token]}))
    return socket


async def hub_throughput(agent: Agent, port: int, workdir: Path, lines: int) -> float:
    """Process output → console hub → daemon socket; lines/s at the client."""
    server_id = "bench-spew"
    spec = ContainerSpec(server_id=server_id, command=tuple(spew(lines)), volume_dir=workdir / "s")
    await agent.runtime.create(spec)
    console = await agent.consoles.register(server_id)
    socket = await viewer(port, server_id)
    while json.loads(await socket.recv())["event"] != "status":
        pass
    started = time.perf_counter()
    await console.power("start")
    got = await count_lines(socket, lines)
    elapsed = time.perf_counter() - started
    await socket.close()
    return got / elapsed


async def runtime_throughput(runtime: ProcessRuntime, workdir: Path, lines: int) -> float:
    """Process output → the runtime's attach stream, nothing else; lines/s."""
    server_id = "bench-runtime-spew"
    spec = ContainerSpec(server_id=server_id, command=tuple(spew(lines)), volume_dir=workdir / "r")
    await runtime.create(spec)
    output = await runtime.attach(server_id)
    seen = 0
    async with output:
        started = time.perf_counter()
        await runtime.start(server_id)
        async for _ in output:
            seen += 1
            if seen >= lines:
                break
        elapsed = time.perf_counter() - started
    await runtime.remove(server_id)
    return seen / elapsed


async def runtime_round_trip(runtime: ProcessRuntime, workdir: Path, n: int) -> list[float]:
    """`send_input` → `cat` → the runtime's attach stream, nothing else."""
    server_id = "bench-runtime-echo"
    spec = ContainerSpec(server_id=server_id, command=("cat",), volume_dir=workdir / "re")
    await runtime.create(spec)
    output = await runtime.attach(server_id)
    async with output:
        await runtime.start(server_id)
        lines = output.__aiter__()

        async def send(text: str) -> None:
            await runtime.send_input(server_id, text + "\n")

        async def answer(text: str) -> None:
            while (await lines.__anext__()).text != text:
                pass

        samples = await round_trips(send, answer, n)
    await runtime.remove(server_id)
    return samples


async def round_trips(
    send: Callable[[str], Awaitable[None]], answer: Callable[[str], Awaitable[None]], n: int
) -> list[float]:
    """Milliseconds from send to answer for n sequential pings (after 50 warm-up ones)."""
    samples = []
    for i in range(50 + n):
        started = time.perf_counter()
        await send(f"ping-{i}")
        await answer(f"ping-{i}")
        if i >= 50:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


async def floor_round_trip(n: int) -> list[float]:
    """A raw websocket echo server."""

    async def echo(socket: ServerConnection) -> None:
        async for message in socket:
            await socket.send(message)

    port = free_port()
    async with (
        serve(echo, "127.0.0.1", port, compression=None),
        connect(f"ws://127.0.0.1:{port}", compression=None) as client,
    ):

        async def answer(text: str) -> None:
            while await client.recv() != text:
                pass

        return await round_trips(client.send, answer, n)


async def hub_round_trip(agent: Agent, port: int, workdir: Path, n: int) -> list[float]:
    """`send command` → process stdin → `cat` → console output back on the same socket."""
    server_id = "bench-echo"
    spec = ContainerSpec(server_id=server_id, command=("cat",), volume_dir=workdir / "e")
    await agent.runtime.create(spec)
    console = await agent.consoles.register(server_id)
    await console.power("start")
    socket = await viewer(port, server_id)
    while json.loads(await socket.recv())["event"] != "status":
        pass

    async def send(text: str) -> None:
        await socket.send(json.dumps({"event": "send command", "args": [text]}))

    async def answer(text: str) -> None:
        while True:
            message = json.loads(await socket.recv())
            if message["event"] == "console output" and text in message["args"]:
                return

    samples = await round_trips(send, answer, n)
    await socket.close()
    return samples


def pct(samples: list[float], q: int) -> float:
    """The q-th percentile."""
    return statistics.quantiles(samples, n=100)[q - 1]


async def main(lines: int, trips: int) -> None:
    """Run both comparisons and print the figures."""
    with tempfile.TemporaryDirectory(prefix="stellar-bench-") as tmp:
        workdir = Path(tmp)
        floor = await floor_throughput(lines)
        runtime = ProcessRuntime()
        try:
            alone = await runtime_throughput(runtime, workdir, lines)
            alone_rt = await runtime_round_trip(runtime, workdir, trips)
        finally:
            await runtime.close()
        async with daemon(workdir) as (agent, port):
            hub = await hub_throughput(agent, port, workdir, lines)
            floor_rt = await floor_round_trip(trips)
            hub_rt = await hub_round_trip(agent, port, workdir, trips)
    ratio = hub / floor
    print(f"console output, {lines:,} lines, {BATCH_SECONDS * 1000:.0f} ms batches")
    print(f"  floor  raw pipe → websockets sender   {floor:>12,.0f} lines/s")
    print(f"  runtime process → attach stream only  {alone:>12,.0f} lines/s")
    print(f"  hub    process → hub → daemon socket {hub:>12,.0f} lines/s")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"  ratio  {ratio:.2f}x (target ≥ {TARGET_RATIO}x) {verdict}")
    print(f"command round trip, {trips} sequential commands")
    for name, samples in (
        ("floor  raw websocket echo", floor_rt),
        ("runtime send_input → cat", alone_rt),
        ("hub    command → cat", hub_rt),
    ):
        print(f"  {name:<26} p50 {pct(samples, 50):6.3f} ms  p99 {pct(samples, 99):6.3f} ms")
    verdict = "ok" if pct(hub_rt, 99) < TARGET_P99_MS else "ABOVE TARGET"
    print(f"  p99 target < {TARGET_P99_MS} ms: {verdict}")


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    trip_count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    asyncio.run(main(count, trip_count))
