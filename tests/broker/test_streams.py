"""Contract: appending, plain reads (SSE resume), blocking, trimming, closing; both brokers."""

from __future__ import annotations

import asyncio

import pytest

from stellarstack.broker import (
    Broker,
    BrokerUnavailable,
    InvalidStreamId,
    StreamMessage,
    parse_stream_id,
)

EVENTS = "stellar:nodes:n1:events"
COMMANDS = "stellar:nodes:n1:commands"


async def fill(broker: Broker, stream: str, n: int) -> list[str]:
    """Append `n` entries numbered 0..n-1 and return their ids."""
    return [await broker.append(stream, {"n": str(i)}) for i in range(n)]


async def test_ids_increase_and_read_returns_entries_in_order(broker: Broker) -> None:
    ids = await fill(broker, EVENTS, 20)
    keys = [parse_stream_id(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == 20
    got = await broker.read({EVENTS: "0"})
    assert [(s, m.id, m.fields) for s, m in got] == [
        (EVENTS, i, {"n": str(n)}) for n, i in enumerate(ids)
    ]


async def test_read_resumes_after_the_given_id_without_gaps(broker: Broker) -> None:
    ids = await fill(broker, EVENTS, 50)
    seen: list[str] = []
    last = "0"
    while page := await broker.read({EVENTS: last}, count=7):
        assert len(page) <= 7
        seen += [m.id for _, m in page]
        last = page[-1][1].id
    assert seen == ids
    resumed = await broker.read({EVENTS: ids[29]})
    assert [m.id for _, m in resumed] == ids[30:]
    assert await broker.read({EVENTS: ids[-1]}) == []


async def test_read_covers_several_streams_and_ignores_missing_ones(broker: Broker) -> None:
    a = await fill(broker, EVENTS, 3)
    b = await fill(broker, COMMANDS, 2)
    got = await broker.read({EVENTS: "0", COMMANDS: b[0], "stellar:missing": "0"})
    assert sorted((s, m.id) for s, m in got) == sorted(
        [(EVENTS, i) for i in a] + [(COMMANDS, b[1])]
    )


async def test_fields_round_trip_verbatim(broker: Broker) -> None:
    fields = {
        "payload": '{"name": "<script>alert(1)</script>", "motd": "§aHi"}',
        "ünïcode": "😀 \n\t\x00 end",
        "empty": "",
    }
    entry_id = await broker.append(COMMANDS, fields)
    assert await broker.read({COMMANDS: "0"}) == [(COMMANDS, StreamMessage(entry_id, fields))]


async def test_append_rejects_an_entry_without_fields(broker: Broker) -> None:
    with pytest.raises(ValueError):
        await broker.append(EVENTS, {})


HOSTILE_IDS = ["", "-1", "1-", "abc", "../../0", "1-2-3", "0x10", "99999999999999999999-0"]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
async def test_read_rejects_an_id_that_is_not_an_entry_id(broker: Broker, bad: str) -> None:
    with pytest.raises(InvalidStreamId):
        await broker.read({EVENTS: bad})


async def test_last_id_is_the_newest_entry(broker: Broker) -> None:
    assert await broker.last_id(EVENTS) == "0-0"
    ids = await fill(broker, EVENTS, 3)
    assert await broker.last_id(EVENTS) == ids[-1]


async def test_dollar_reads_only_entries_appended_while_blocked(broker: Broker) -> None:
    await fill(broker, EVENTS, 3)
    assert await broker.read({EVENTS: "$"}) == []
    reader = asyncio.create_task(broker.read({EVENTS: "$"}, block_ms=30_000))
    await asyncio.sleep(0.05)
    new_id = await broker.append(EVENTS, {"n": "new"})
    got = await asyncio.wait_for(reader, 5)
    assert [m.id for _, m in got] == [new_id]


async def test_blocking_read_wakes_on_append(broker: Broker) -> None:
    reader = asyncio.create_task(broker.read({EVENTS: "0"}, block_ms=30_000))
    await asyncio.sleep(0.05)
    assert not reader.done()
    entry_id = await broker.append(EVENTS, {"status": "running"})
    got = await asyncio.wait_for(reader, 5)
    assert got == [(EVENTS, StreamMessage(entry_id, {"status": "running"}))]


async def test_blocking_read_times_out_when_nothing_comes(broker: Broker) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await broker.read({EVENTS: "0"}, block_ms=100) == []
    assert loop.time() - started >= 0.09  # it did wait rather than return at once


async def test_trim_keeps_the_newest_entries(broker: Broker) -> None:
    ids = await fill(broker, EVENTS, 10)
    assert await broker.trim(EVENTS, maxlen=4) == 6
    assert await broker.length(EVENTS) == 4
    assert [m.id for _, m in await broker.read({EVENTS: "0"})] == ids[6:]
    assert await broker.trim(EVENTS, maxlen=4) == 0
    assert await broker.trim("stellar:missing", maxlen=1) == 0


async def test_append_with_maxlen_bounds_the_stream(broker: Broker) -> None:
    ids = [await broker.append(EVENTS, {"n": str(i)}, maxlen=100) for i in range(1000)]
    length = await broker.length(EVENTS)
    assert 100 <= length < 1000  # Redis trims whole nodes ("about" maxlen)
    remaining = [m.id for _, m in await broker.read({EVENTS: "0"}, count=1000)]
    assert remaining == ids[-length:]


async def test_length_of_a_missing_stream_is_zero(broker: Broker) -> None:
    assert await broker.length("stellar:missing") == 0


async def test_ping_measures_a_round_trip(broker: Broker) -> None:
    assert await broker.ping() >= 0


async def test_close_wakes_blocked_readers_and_refuses_later_calls(broker: Broker) -> None:
    await broker.ensure_group(COMMANDS, "daemon")
    readers = [
        asyncio.create_task(broker.read({EVENTS: "0"}, block_ms=30_000)),
        asyncio.create_task(broker.read_group(COMMANDS, "daemon", "c1", block_ms=30_000)),
    ]
    await asyncio.sleep(0.05)
    await broker.close()
    assert await asyncio.wait_for(asyncio.gather(*readers), 5) == [[], []]
    with pytest.raises(BrokerUnavailable):
        await broker.append(EVENTS, {"n": "late"})


async def test_cancelling_a_caller_always_stops_it(broker: Broker) -> None:
    # Python 3.11's wait_for (inside redis-py) can swallow a cancellation that lands as a
    # command is sent; the broker must not pass that on to its callers.
    await broker.ensure_group(COMMANDS, "daemon")

    async def poll() -> None:
        while True:
            await broker.ack(COMMANDS, "daemon", "1-0")
            await broker.read_group(COMMANDS, "daemon", "c1")

    for attempt in range(150):
        task = asyncio.create_task(poll())
        for _ in range(attempt % 9):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done and task.cancelled(), f"attempt {attempt}: cancellation was lost"
