"""Command delivery latency: XADD → handler, raw redis-py vs RedisBroker/MemoryBroker consumers.

DESIGN.md §7: "command delivery API → daemon handler: floor = raw XADD → XREADGROUP
(p50 ~0.5 ms here); target p50 < 5 ms, p99 < 20 ms". Starts its own redis-server on a free
port, sends N commands one at a time (the next once the previous was handled) and prints
p50/p99 of append-to-handler latency for each path, with the ratio to the floor.

    .venv/bin/python bench/broker_delivery.py [N]
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.services import start_redis

from stellarstack.broker import (
    Broker,
    MemoryBroker,
    RedisBroker,
    StreamConsumer,
    StreamMessage,
)

STREAM = "stellar:nodes:bench:commands"
GROUP = "daemon"
WARMUP = 100
TARGET_P50_MS, TARGET_P99_MS = 5.0, 20.0

Send = Callable[[int], Awaitable[None]]


async def measure(send: Send, received: asyncio.Queue[int], n: int) -> list[float]:
    """Send n stamped commands one after another; return append → handler latencies in ms."""
    latencies: list[float] = []
    for i in range(WARMUP + n):
        started = time.perf_counter_ns()
        await send(started)
        handled = await asyncio.wait_for(received.get(), 10)
        if i >= WARMUP:
            latencies.append((handled - started) / 1e6)
    return latencies


async def raw_floor(url: str, n: int) -> list[float]:
    """Raw redis-py: XADD on one connection, XREADGROUP BLOCK loop on another."""
    producer = Redis.from_url(url, decode_responses=True)
    reader = Redis.from_url(url, decode_responses=True)
    await reader.delete(STREAM)
    await reader.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    received: asyncio.Queue[int] = asyncio.Queue()
    stop = asyncio.Event()

    async def consume() -> None:
        # Stopped by a flag, not cancel(): redis-py on Python 3.11 can lose a cancellation.
        while not stop.is_set():
            for _, entries in await reader.xreadgroup(GROUP, "c", {STREAM: ">"}, 10, 100):
                for entry_id, _fields in entries:
                    received.put_nowait(time.perf_counter_ns())
                    await reader.xack(STREAM, GROUP, entry_id)

    async def send(stamp: int) -> None:
        await producer.xadd(STREAM, {"type": "server.start", "sent": str(stamp)})

    task = asyncio.create_task(consume())
    try:
        return await measure(send, received, n)
    finally:
        stop.set()
        await task
        await producer.aclose()
        await reader.aclose()


async def through_consumer(producer: Broker, consumer_broker: Broker, n: int) -> list[float]:
    """Broker.append → StreamConsumer → handler (which acks on return)."""
    received: asyncio.Queue[int] = asyncio.Queue()

    async def handler(message: StreamMessage) -> None:
        received.put_nowait(time.perf_counter_ns())

    stream = f"{STREAM}:{id(producer)}"
    consumer = StreamConsumer(consumer_broker, stream, GROUP, "node-bench", handler)
    await consumer_broker.ensure_group(stream, GROUP)
    task = asyncio.create_task(consumer.run())

    async def send(stamp: int) -> None:
        await producer.append(stream, {"type": "server.start", "sent": str(stamp)})

    try:
        return await measure(send, received, n)
    finally:
        consumer.stop()
        await task


def report(name: str, latencies: list[float], floor_p50: float | None) -> float:
    """Print one row and return its p50."""
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    ratio = f"{p50 / floor_p50:5.1f}x" if floor_p50 else "floor"
    verdict = (
        ""
        if floor_p50 is None
        else ("ok" if p50 < TARGET_P50_MS and p99 < TARGET_P99_MS else "OVER TARGET")
    )
    print(f"{name:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {ratio:>6}   {verdict}")
    return p50


async def main(n: int) -> None:
    """Run the three paths and print the table."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    server, reason = start_redis()
    if server is None:
        raise SystemExit(f"cannot start redis-server: {reason}")
    try:
        print(f"command delivery: {n} sequential commands (+{WARMUP} warm-up), {server.url}")
        floor = report("raw XADD -> XREADGROUP (floor)", await raw_floor(server.url, n), None)
        producer, consumer = RedisBroker(server.url), RedisBroker(server.url)
        try:
            redis_path = await through_consumer(producer, consumer, n)
        finally:
            await producer.close()
            await consumer.close()
        report("RedisBroker + StreamConsumer", redis_path, floor)
        async with MemoryBroker() as memory:
            memory_path = await through_consumer(memory, memory, n)
        report("MemoryBroker + StreamConsumer", memory_path, floor)
        print(f"target: p50 < {TARGET_P50_MS} ms, p99 < {TARGET_P99_MS} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
