"""MultiStreamConsumer on both brokers: many streams in one read; per-stream retry, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stellarstack.broker import Broker, MultiStreamConsumer, StreamMessage, dead_letter_stream
from tests.broker.polling import wait_until

GROUP = "panel"
STREAMS = [f"stellar:nodes:n{i}:events" for i in range(4)]


class Recorder:
    """Records (stream, message) deliveries; fails the first `failures` of entries it is told."""

    def __init__(self, failures: int = 0, failing: str = "") -> None:
        self.failures, self.failing = failures, failing
        self.calls: list[tuple[str, StreamMessage]] = []

    async def __call__(self, stream: str, message: StreamMessage) -> None:
        self.calls.append((stream, message))
        tries = sum(s == stream and m.id == message.id for s, m in self.calls)
        if message.fields.get("n") == self.failing and tries <= self.failures:
            raise RuntimeError(f"database refused event {self.failing}")


def multi(broker: Broker, handler: Recorder, streams: list[str]) -> MultiStreamConsumer:
    """A consumer tuned for tests: short blocks and idle times."""
    return MultiStreamConsumer(
        broker,
        GROUP,
        "replica-1",
        handler,
        streams=streams,
        block_ms=20,
        min_idle_ms=30,
        max_deliveries=2,
    )


async def run_until(c: MultiStreamConsumer, condition: Callable[[], bool]) -> None:
    """Run iterations until `condition()` holds."""

    async def done() -> bool:
        await c.run_once()
        return condition()

    await wait_until(done, interval=0)


async def test_entries_of_every_stream_are_handled_once_in_order_and_acked(broker: Broker) -> None:
    ids = {s: [await broker.append(s, {"n": f"{s}#{i}"}) for i in range(3)] for s in STREAMS}
    handler = Recorder()
    c = multi(broker, handler, STREAMS)
    await run_until(c, lambda: len(handler.calls) == 12)
    for stream in STREAMS:
        assert [m.id for s, m in handler.calls if s == stream] == ids[stream]
        assert await broker.pending_count(stream, GROUP) == 0
    await asyncio.sleep(0.05)
    for _ in range(3):
        await c.run_once()
    assert len(handler.calls) == 12


async def test_a_failing_entry_is_retried_then_dead_lettered_to_its_own_stream(
    broker: Broker,
) -> None:
    handler = Recorder(failures=10, failing="bad")
    c = multi(broker, handler, STREAMS[:2])
    await c.run_once()  # creates the groups
    bad = await broker.append(STREAMS[1], {"n": "bad"})
    good = await broker.append(STREAMS[0], {"n": "good"})
    await run_until(c, lambda: bool(handler.calls))
    dead = dead_letter_stream(STREAMS[1])

    async def dead_lettered() -> bool:
        await c.run_once()
        return await broker.length(dead) == 1

    await wait_until(dead_lettered, interval=0.01)
    [(_, entry)] = await broker.read({dead: "0"})
    assert entry.fields["_original_id"] == bad
    assert "database refused event bad" in entry.fields["_error"]
    assert await broker.length(dead_letter_stream(STREAMS[0])) == 0
    assert [m.id for s, m in handler.calls if s == STREAMS[0]] == [good]
    assert await broker.pending_count(STREAMS[1], GROUP) == 0


async def test_a_stream_added_while_running_joins_the_next_read(broker: Broker) -> None:
    handler = Recorder()
    c = multi(broker, handler, [])
    task = asyncio.create_task(c.run())
    try:
        await asyncio.sleep(0.05)
        c.add_stream(STREAMS[3])
        entry = await broker.append(STREAMS[3], {"n": "hello"})
        await wait_until(lambda: [m.id for _, m in handler.calls] == [entry])
        assert c.streams == (STREAMS[3],)
        c.remove_stream(STREAMS[3])
        await asyncio.sleep(0.3)  # the read in progress ends (Redis times blocks out at 10 Hz)
        await broker.append(STREAMS[3], {"n": "after removal"})
        await asyncio.sleep(0.1)
        assert len(handler.calls) == 1
    finally:
        c.stop()
        await asyncio.wait_for(task, 2)


async def test_stop_ends_a_blocked_multi_stream_read(broker: Broker) -> None:
    c = MultiStreamConsumer(broker, GROUP, "r", Recorder(), streams=STREAMS, block_ms=60_000)
    task = asyncio.create_task(c.run())
    await asyncio.sleep(0.1)
    c.stop()
    await asyncio.wait_for(task, 2)
