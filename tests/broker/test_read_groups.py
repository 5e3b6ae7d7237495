"""Contract: one group read over several streams (XREADGROUP … STREAMS a b > >); both brokers."""

from __future__ import annotations

import asyncio

import pytest

from stellarstack.broker import Broker, GroupNotFound

GROUP = "panel"
STREAMS = [f"stellar:nodes:n{i}:events" for i in range(3)]


async def grouped(broker: Broker, streams: list[str] = STREAMS) -> None:
    """Create the group on every stream."""
    for stream in streams:
        await broker.ensure_group(stream, GROUP)


async def test_one_call_returns_entries_of_several_streams_tagged_and_in_order(
    broker: Broker,
) -> None:
    await grouped(broker)
    a1 = await broker.append(STREAMS[0], {"n": "a1"})
    c1 = await broker.append(STREAMS[2], {"n": "c1"})
    a2 = await broker.append(STREAMS[0], {"n": "a2"})
    got = await broker.read_groups(STREAMS, GROUP, "r1")
    assert sorted((s, m.id) for s, m in got) == sorted(
        [(STREAMS[0], a1), (STREAMS[0], a2), (STREAMS[2], c1)]
    )
    assert [m.id for s, m in got if s == STREAMS[0]] == [a1, a2]
    assert {m.fields["n"] for _, m in got} == {"a1", "a2", "c1"}
    assert all(m.deliveries == 1 for _, m in got)


async def test_each_entry_is_delivered_once_per_group_across_consumers(broker: Broker) -> None:
    await grouped(broker)
    for stream in STREAMS:
        await broker.append(stream, {"n": "x"})
    first = await broker.read_groups(STREAMS, GROUP, "r1")
    assert len(first) == 3
    assert await broker.read_groups(STREAMS, GROUP, "r2") == []
    assert await broker.read_groups(STREAMS, GROUP, "r1") == []
    await broker.ensure_group(STREAMS[1], "audit")  # another group gets its own copy
    assert len(await broker.read_groups([STREAMS[1]], "audit", "r3")) == 1


async def test_entries_stay_pending_per_stream_until_acked(broker: Broker) -> None:
    await grouped(broker)
    ids = [await broker.append(stream, {"n": "x"}) for stream in STREAMS]
    got = await broker.read_groups(STREAMS, GROUP, "r1")
    assert [await broker.pending_count(s, GROUP) for s in STREAMS] == [1, 1, 1]
    assert await broker.ack(STREAMS[0], GROUP, ids[0]) == 1
    assert [await broker.pending_count(s, GROUP) for s in STREAMS] == [0, 1, 1]
    assert {p.consumer for p in await broker.pending(STREAMS[1], GROUP)} == {"r1"}
    assert len(got) == 3


async def test_count_limits_each_stream(broker: Broker) -> None:
    await grouped(broker, STREAMS[:2])
    for i in range(5):
        await broker.append(STREAMS[0], {"n": str(i)})
        await broker.append(STREAMS[1], {"n": str(i)})
    got = await broker.read_groups(STREAMS[:2], GROUP, "r1", count=2)
    assert sorted(s for s, _ in got) == [STREAMS[0]] * 2 + [STREAMS[1]] * 2


async def test_blocking_read_wakes_on_an_append_to_any_stream(broker: Broker) -> None:
    await grouped(broker)
    read = asyncio.create_task(broker.read_groups(STREAMS, GROUP, "r1", block_ms=5000))
    await asyncio.sleep(0.1)
    assert not read.done()
    entry = await broker.append(STREAMS[2], {"n": "late"})
    got = await asyncio.wait_for(read, timeout=2)
    assert [(s, m.id) for s, m in got] == [(STREAMS[2], entry)]


async def test_a_stream_without_the_group_fails_the_whole_read_delivering_nothing(
    broker: Broker,
) -> None:
    await grouped(broker, STREAMS[:2])
    await broker.append(STREAMS[0], {"n": "x"})
    with pytest.raises(GroupNotFound):
        await broker.read_groups(STREAMS, GROUP, "r1")
    assert await broker.pending_count(STREAMS[0], GROUP) == 0
    assert len(await broker.read_groups(STREAMS[:2], GROUP, "r1")) == 1


async def test_no_streams_reads_nothing_at_once(broker: Broker) -> None:
    assert await asyncio.wait_for(broker.read_groups([], GROUP, "r1", block_ms=5000), 1) == []


async def test_hostile_stream_names_are_data_not_commands(broker: Broker) -> None:
    odd = ["stellar:nodes:\u00e9v\u00e8nement:events", "STREAMS", ">", "a b\r\nPING"]
    await grouped(broker, odd)
    for stream in odd:
        await broker.append(stream, {"n": stream})
    got = await broker.read_groups(odd, GROUP, "r1")
    assert sorted((s, m.fields["n"]) for s, m in got) == sorted((s, s) for s in odd)
