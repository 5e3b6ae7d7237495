"""StreamConsumer on both brokers: ack once, retry, reclaim, dead-letter, stop and drain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from stellarstack.broker import Broker, StreamConsumer, StreamMessage, dead_letter_stream
from tests.broker.polling import wait_until

COMMANDS = "stellar:nodes:n1:commands"
GROUP = "daemon"


class Recorder:
    """A handler that records every delivery and fails the first `failures` of each entry."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[StreamMessage] = []

    async def __call__(self, message: StreamMessage) -> None:
        self.calls.append(message)
        if sum(c.id == message.id for c in self.calls) <= self.failures:
            raise RuntimeError(f"cannot start server {message.fields.get('server', '?')}")


def consumer(broker: Broker, handler: Recorder, **options: Any) -> StreamConsumer:
    """A consumer tuned for tests: short blocks and idle times."""
    settings = {"block_ms": 20, "min_idle_ms": 30, "max_deliveries": 3, **options}
    return StreamConsumer(broker, COMMANDS, GROUP, "node-1", handler, **settings)


async def run_until(c: StreamConsumer, condition: Callable[[], bool]) -> None:
    """Run iterations until `condition()` holds."""

    async def done() -> bool:
        await c.run_once()
        return condition()

    await wait_until(done, interval=0)


async def test_successful_handler_is_called_once_per_entry_in_order(broker: Broker) -> None:
    ids = [await broker.append(COMMANDS, {"type": "server.start", "n": str(i)}) for i in range(5)]
    handler = Recorder()
    c = consumer(broker, handler)
    await run_until(c, lambda: len(handler.calls) == 5)
    assert [m.id for m in handler.calls] == ids
    assert await broker.pending_count(COMMANDS, GROUP) == 0
    await asyncio.sleep(0.05)  # past min_idle: an unacked entry would come back now
    for _ in range(3):
        await c.run_once()
    assert len(handler.calls) == 5


async def test_failed_entry_is_retried_until_the_handler_succeeds(broker: Broker) -> None:
    entry_id = await broker.append(COMMANDS, {"type": "server.start"})
    handler = Recorder(failures=1)
    c = consumer(broker, handler)
    await run_until(c, lambda: len(handler.calls) == 2)
    assert [(m.id, m.deliveries) for m in handler.calls] == [(entry_id, 1), (entry_id, 2)]
    assert await broker.pending_count(COMMANDS, GROUP) == 0
    assert await broker.length(dead_letter_stream(COMMANDS)) == 0


async def test_entry_failing_every_delivery_is_dead_lettered(broker: Broker) -> None:
    fields = {"type": "server.start", "server": "srv-1", "payload": "{}"}
    entry_id = await broker.append(COMMANDS, fields)
    handler = Recorder(failures=100)
    c = consumer(broker, handler, max_deliveries=3)
    dead = dead_letter_stream(COMMANDS)

    async def dead_lettered() -> bool:
        await c.run_once()
        return await broker.length(dead) == 1

    with capture_logs() as logs:
        await wait_until(dead_lettered, interval=0)
    assert [m.deliveries for m in handler.calls] == [1, 2, 3]
    [(_, letter)] = await broker.read({dead: "0"})
    assert letter.fields == {
        **fields,
        "_original_id": entry_id,
        "_deliveries": "3",
        "_group": GROUP,
        "_error": "RuntimeError: cannot start server srv-1",
    }
    assert await broker.pending_count(COMMANDS, GROUP) == 0
    assert await broker.length(COMMANDS) == 1  # acknowledged, not deleted
    events = [e["event"] for e in logs]
    assert events.count("broker.consumer.handler_failed") == 3
    assert events.count("broker.consumer.dead_lettered") == 1
    await asyncio.sleep(0.05)
    await c.run_once()
    assert len(handler.calls) == 3


async def test_entry_left_by_a_crashed_consumer_is_reclaimed(broker: Broker) -> None:
    entry_id = await broker.append(COMMANDS, {"type": "server.stop"})
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "node-1-before-crash")  # never acknowledged
    handler = Recorder()
    c = consumer(broker, handler)
    await run_until(c, lambda: bool(handler.calls))
    assert [(m.id, m.deliveries) for m in handler.calls] == [(entry_id, 2)]
    assert await broker.pending_count(COMMANDS, GROUP) == 0


async def test_two_consumers_share_the_work_without_duplicates(broker: Broker) -> None:
    ids = [await broker.append(COMMANDS, {"n": str(i)}) for i in range(30)]
    handler = Recorder()
    a = StreamConsumer(broker, COMMANDS, GROUP, "a", handler, batch=4, block_ms=20)
    b = StreamConsumer(broker, COMMANDS, GROUP, "b", handler, batch=4, block_ms=20)
    tasks = [asyncio.create_task(x.run()) for x in (a, b)]
    try:
        await wait_until(lambda: len(handler.calls) >= 30)
    finally:
        a.stop()
        b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sorted(m.id for m in handler.calls) == sorted(ids)


async def test_stop_ends_a_run_blocked_on_an_empty_stream(broker: Broker) -> None:
    c = consumer(broker, Recorder(), block_ms=30_000)
    task = asyncio.create_task(c.run())
    await asyncio.sleep(0.05)
    assert not task.done()
    c.stop()
    await asyncio.wait_for(task, 5)
    assert c.stopping


async def test_stop_drains_the_entries_already_in_hand(broker: Broker) -> None:
    ids = [await broker.append(COMMANDS, {"n": str(i)}) for i in range(3)]
    handled: list[str] = []
    c: StreamConsumer

    async def handler(message: StreamMessage) -> None:
        c.stop()  # e.g. SIGTERM arrives while the first command runs
        handled.append(message.id)

    c = StreamConsumer(broker, COMMANDS, GROUP, "node-1", handler, batch=10, block_ms=20)
    await asyncio.wait_for(c.run(), 5)
    assert handled == ids
    assert await broker.pending_count(COMMANDS, GROUP) == 0


async def test_group_starting_at_dollar_ignores_the_backlog(broker: Broker) -> None:
    await broker.append(COMMANDS, {"n": "old"})
    handler = Recorder()
    c = consumer(broker, handler, start_id="$")
    await c.run_once()
    new_id = await broker.append(COMMANDS, {"n": "new"})
    await run_until(c, lambda: bool(handler.calls))
    assert [m.id for m in handler.calls] == [new_id]


async def test_max_deliveries_must_be_positive(broker: Broker) -> None:
    with pytest.raises(ValueError):
        consumer(broker, Recorder(), max_deliveries=0)
