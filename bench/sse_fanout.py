"""Event fan-out to SSE clients: deliveries/s and latency against a raw Redis subscriber loop.

DESIGN.md §7: "event fan-out to SSE clients: floor = raw Redis subscriber loop; target
≥ 0.5x floor, p99 < 100 ms". Starts its own redis-server, a SQLite panel (uvicorn, in a
child process, on Redis) and, in this process, N clients and a publisher sending M events/s:

- floor: N redis-py pub/sub subscribers on one channel, M raw PUBLISHes/s of the same JSON;
- panel: N SSE clients of one user on `/api/v1/events/stream`, M `server.status` events/s
  through the real fan-out (`publish_event`: pub/sub, the replay log, the status cache), read
  by the panel's log tail and written to every client.

Both sides parse the same way (find the event's `timestamp`), so the ratio compares the paths.
Latency = receive time - the event's timestamp (one clock). Prints deliveries/s, p50/p99 and
the ratio to the floor.

    .venv/bin/python bench/sse_fanout.py [CLIENTS] [EVENTS_PER_S] [SECONDS]

`SSE_BENCH_PROFILE=/tmp/panel.prof` profiles the panel process (cProfile) during the run.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
import uvloop
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.panel.admin.world import session_for
from tests.panel.events.sse import Cast, make_cast, status_event
from tests.support.services import free_port, start_redis, stop_process, wait_for_port

from stellarstack.broker import RedisBroker
from stellarstack.panel.db import migrate
from stellarstack.panel.db.models import User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.fanout import publish_event

TARGET_RATIO, TARGET_P99_MS = 0.5, 100.0
CHANNEL = "bench:sse:floor"
MARK = b'"timestamp":'


class Tally:
    """Latencies of every delivery during the measured window."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.open = False

    def seen(self, text: bytes) -> None:
        """Record one delivered event (its JSON somewhere in `text`)."""
        if not self.open:
            return
        at = text.find(MARK)
        if at < 0:
            return
        end = at + len(MARK)
        stop = min(i for i in (text.find(b",", end), text.find(b"}", end)) if i > 0)
        self.latencies.append(time.time() - float(text[end:stop]))

    def report(self, name: str, seconds: float) -> tuple[float, float]:
        """Print and return deliveries/s and p99 (ms)."""
        lat = sorted(self.latencies)
        rate = len(lat) / seconds
        p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
        p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
        print(f"{name:<34} {rate:9.0f} deliveries/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        return rate, p99


async def pace(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call `send(i)` `rate` times a second for `seconds`."""
    start = time.perf_counter()
    i = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while i < due:
            await send(i)
            i += 1
        await asyncio.sleep(0.002)


async def floor(url: str, clients: int, rate: float, seconds: float, payload: str) -> Tally:
    """N raw pub/sub subscribers, M raw PUBLISHes a second."""
    tally = Tally()
    subscribers = [Redis.from_url(url) for _ in range(clients)]
    pubsubs = [s.pubsub() for s in subscribers]
    for ps in pubsubs:
        await ps.subscribe(CHANNEL)

    async def listen(ps: object) -> None:
        async for message in ps.listen():  # type: ignore[attr-defined]
            if message["type"] == "message":
                tally.seen(message["data"])

    readers = [asyncio.create_task(listen(ps)) for ps in pubsubs]
    publisher = Redis.from_url(url)

    async def send(i: int) -> None:
        await publisher.publish(CHANNEL, payload.replace("TS", repr(time.time())))

    await asyncio.sleep(0.5)
    tally.open = True
    await pace(rate, seconds, send)
    await asyncio.sleep(0.3)
    tally.open = False
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for ps, s in zip(pubsubs, subscribers, strict=True):
        await ps.aclose()
        await s.aclose()
    await publisher.aclose()
    return tally


async def sse_client(port: int, cookie: str, tally: Tally, ready: asyncio.Event) -> None:
    """A minimal SSE client (raw HTTP/1.1, chunked), so the client costs what a subscriber does."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    ready.set()
    try:
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            for frame in chunk.split(b"\n\n"):
                if frame.startswith(b"id:"):
                    tally.seen(frame)
    finally:
        writer.close()


async def panel_path(
    port: int, redis_url: str, cookies: list[str], rate: float, seconds: float, cast: Cast
) -> Tally:
    """N SSE clients of one panel, M events a second through the real fan-out."""
    tally = Tally()
    readies = [asyncio.Event() for _ in cookies]
    clients = [
        asyncio.create_task(sse_client(port, c, tally, r))
        for c, r in zip(cookies, readies, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    broker = RedisBroker(redis_url)
    server_id = cast.server_a

    async def send(i: int) -> None:
        await publish_event(broker, status_event(cast, server_id, f"bench-{i}"))

    await asyncio.sleep(0.5)
    tally.open = True
    await pace(rate, seconds, send)
    await asyncio.sleep(0.3)
    tally.open = False
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    await broker.close()
    return tally


def serve(port: int, database_url: str, redis_url: str, data_dir: str) -> None:
    """Child process: the panel on Redis, served as `stellarstack panel` serves it."""
    from stellarstack.panel.app import create_app
    from stellarstack.serve import listen, run_until_signalled
    from stellarstack.settings import PanelSettings

    settings = PanelSettings(
        data_dir=Path(data_dir),
        database_url=database_url,
        redis_url=redis_url,
        rate_limit_api_client="100000/minute",
        events_max_streams_per_user=100_000,
        log_level="warning",
    )
    listener = listen(create_app(settings), "127.0.0.1", port)  # as `stellarstack panel` does
    run = run_until_signalled([listener])
    profile = os.environ.get("SSE_BENCH_PROFILE")  # a path: cProfile the panel into it
    if profile:
        cProfile.runctx("asyncio.run(run)", globals(), locals(), profile)
    else:
        asyncio.run(run)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main(clients: int, rate: float, seconds: float) -> None:
    """Set up, measure both paths, print."""
    redis, reason = start_redis()
    if redis is None:
        sys.exit(f"sse_fanout: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="stellar-sse-bench-"))
    database_url = f"sqlite+aiosqlite:///{workdir / 'panel.db'}"
    await migrate.upgrade(database_url)
    database = Database(database_url)
    cast = await make_cast(database)
    async with database.sessionmaker() as db:
        alice = await db.get(User, cast.users["alice"])
    assert alice is not None
    cookies = [(await session_for(database, alice))["Cookie"] for _ in range(clients)]
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), database_url, redis.url, str(workdir)],
        env={**os.environ, "STELLAR_LOG_LEVEL": "warning"},
    )
    try:
        if not wait_for_port(port, 60, child):
            sys.exit("sse_fanout: the panel did not start")
        sample = json.dumps(status_event(cast, cast.server_a, "x").to_wire())
        payload = sample.replace(json.dumps(json.loads(sample)["timestamp"]), "TS", 1)
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start")
        print(
            f"{clients} clients, {rate:.0f} events/s for {seconds:.0f} s "
            f"(offered {clients * rate:,.0f} deliveries/s)"
        )
        raw = await floor(redis.url, clients, rate, seconds, payload)
        floor_rate, _ = raw.report("raw Redis subscriber loop (floor)", seconds)
        cpu_before, wall_before = cpu_seconds(child.pid), time.perf_counter()
        sse = await panel_path(port, redis.url, cookies, rate, seconds, cast)
        busy = (cpu_seconds(child.pid) - cpu_before) / (time.perf_counter() - wall_before)
        sse_rate, p99 = sse.report("panel SSE fan-out", seconds)
        print(f"panel process CPU while streaming: {busy:.0%} of one core")
        ratio = sse_rate / floor_rate if floor_rate else float("nan")
        verdict = "met" if ratio >= TARGET_RATIO and p99 < TARGET_P99_MS else "NOT met"
        print(
            f"ratio to floor {ratio:.2f}x; target >= {TARGET_RATIO}x and p99 < "
            f"{TARGET_P99_MS:.0f} ms: {verdict}"
        )
    finally:
        stop_process(child)
        await database.dispose()
        redis.stop()


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        args = [float(a) for a in sys.argv[1:]]
        # uvloop on the client side for both paths: the clients, not the panel, limit here.
        uvloop.run(
            main(
                int(args[0]) if args else 50,
                args[1] if len(args) > 1 else 100,
                args[2] if len(args) > 2 else 10,
            )
        )
