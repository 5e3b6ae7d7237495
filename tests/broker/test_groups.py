"""Contract: consumer groups, pending entries, ack, reclaim after idle; both brokers."""

from __future__ import annotations

import asyncio

import pytest

from stellarstack.broker import Broker, GroupNotFound

COMMANDS = "stellar:nodes:n1:commands"
GROUP = "daemon"


async def fill(broker: Broker, n: int) -> list[str]:
    """Append `n` commands numbered 0..n-1 and return their ids."""
    return [await broker.append(COMMANDS, {"n": str(i)}) for i in range(n)]


async def test_group_hands_existing_entries_from_the_start(broker: Broker) -> None:
    ids = await fill(broker, 3)
    await broker.ensure_group(COMMANDS, GROUP)
    got = await broker.read_group(COMMANDS, GROUP, "c1")
    assert [m.id for m in got] == ids
    assert all(m.deliveries == 1 for m in got)
    assert await broker.read_group(COMMANDS, GROUP, "c1") == []


async def test_group_started_at_dollar_skips_existing_entries(broker: Broker) -> None:
    await fill(broker, 3)
    await broker.ensure_group(COMMANDS, GROUP, start_id="$")
    assert await broker.read_group(COMMANDS, GROUP, "c1") == []
    new_id = await broker.append(COMMANDS, {"n": "new"})
    assert [m.id for m in await broker.read_group(COMMANDS, GROUP, "c1")] == [new_id]


async def test_ensure_group_creates_the_stream_and_is_idempotent(broker: Broker) -> None:
    await broker.ensure_group(COMMANDS, GROUP)
    assert await broker.length(COMMANDS) == 0
    await fill(broker, 2)
    assert len(await broker.read_group(COMMANDS, GROUP, "c1")) == 2
    await broker.ensure_group(COMMANDS, GROUP)  # must not rewind the group
    assert await broker.read_group(COMMANDS, GROUP, "c1") == []
    assert await broker.pending_count(COMMANDS, GROUP) == 2


async def test_two_consumers_split_entries_and_never_share_one(broker: Broker) -> None:
    ids = await fill(broker, 20)
    await broker.ensure_group(COMMANDS, GROUP)
    seen: dict[str, list[str]] = {"c1": [], "c2": []}
    while True:
        a = await broker.read_group(COMMANDS, GROUP, "c1", count=3)
        b = await broker.read_group(COMMANDS, GROUP, "c2", count=3)
        if not a and not b:
            break
        seen["c1"] += [m.id for m in a]
        seen["c2"] += [m.id for m in b]
    assert seen["c1"] and seen["c2"]
    assert not set(seen["c1"]) & set(seen["c2"])
    assert sorted(seen["c1"] + seen["c2"]) == sorted(ids)


async def test_blocked_consumers_each_get_different_entries(broker: Broker) -> None:
    await broker.ensure_group(COMMANDS, GROUP)
    readers = [
        asyncio.create_task(broker.read_group(COMMANDS, GROUP, c, count=1, block_ms=30_000))
        for c in ("c1", "c2")
    ]
    await asyncio.sleep(0.05)
    ids = await fill(broker, 2)
    got = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert sorted(m.id for batch in got for m in batch) == sorted(ids)


async def test_blocking_group_read_times_out_when_nothing_comes(broker: Broker) -> None:
    await broker.ensure_group(COMMANDS, GROUP)
    assert await broker.read_group(COMMANDS, GROUP, "c1", block_ms=50) == []


async def test_unacked_entries_stay_pending_and_are_reclaimed_once_idle(broker: Broker) -> None:
    [entry_id] = await fill(broker, 1)
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "c1")
    assert await broker.pending_count(COMMANDS, GROUP) == 1
    [row] = await broker.pending(COMMANDS, GROUP)
    assert (row.id, row.consumer, row.deliveries) == (entry_id, "c1", 1)

    # Not idle long enough yet: nobody may take it over.
    assert await broker.claim_stale(COMMANDS, GROUP, "c2", min_idle_ms=60_000) == []
    await asyncio.sleep(0.06)
    [claimed] = await broker.claim_stale(COMMANDS, GROUP, "c2", min_idle_ms=50)
    assert (claimed.id, claimed.fields, claimed.deliveries) == (entry_id, {"n": "0"}, 2)
    [row] = await broker.pending(COMMANDS, GROUP)
    assert (row.consumer, row.deliveries) == ("c2", 2)
    assert row.idle_ms < 50  # the claim reset the idle time

    await asyncio.sleep(0.06)
    [again] = await broker.claim_stale(COMMANDS, GROUP, "c1", min_idle_ms=50)
    assert again.deliveries == 3
    assert await broker.pending_count(COMMANDS, GROUP) == 1


async def test_idle_time_grows_while_an_entry_is_pending(broker: Broker) -> None:
    await fill(broker, 1)
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "c1")
    await asyncio.sleep(0.06)
    [row] = await broker.pending(COMMANDS, GROUP)
    assert row.idle_ms >= 50


async def test_ack_removes_the_entry_from_pending(broker: Broker) -> None:
    ids = await fill(broker, 3)
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "c1")
    assert await broker.ack(COMMANDS, GROUP, ids[0], ids[1]) == 2
    assert await broker.ack(COMMANDS, GROUP, ids[0]) == 0  # already acknowledged
    assert [p.id for p in await broker.pending(COMMANDS, GROUP)] == [ids[2]]
    await asyncio.sleep(0.02)
    claimed = await broker.claim_stale(COMMANDS, GROUP, "c2", min_idle_ms=0)
    assert [m.id for m in claimed] == [ids[2]]


async def test_ack_for_an_unknown_group_acknowledges_nothing(broker: Broker) -> None:
    [entry_id] = await fill(broker, 1)
    assert await broker.ack(COMMANDS, "nobody", entry_id) == 0


async def test_claim_honours_count_oldest_first(broker: Broker) -> None:
    ids = await fill(broker, 5)
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "c1")
    claimed = await broker.claim_stale(COMMANDS, GROUP, "c2", min_idle_ms=0, count=2)
    assert [m.id for m in claimed] == ids[:2]


async def test_pending_entries_trimmed_away_are_dropped_on_claim(broker: Broker) -> None:
    ids = await fill(broker, 3)
    await broker.ensure_group(COMMANDS, GROUP)
    await broker.read_group(COMMANDS, GROUP, "c1")
    await broker.trim(COMMANDS, maxlen=1)
    claimed = await broker.claim_stale(COMMANDS, GROUP, "c2", min_idle_ms=0)
    assert [m.id for m in claimed] == [ids[2]]
    assert [p.id for p in await broker.pending(COMMANDS, GROUP)] == [ids[2]]


async def test_group_operations_on_a_missing_group_raise_group_not_found(broker: Broker) -> None:
    await fill(broker, 1)
    with pytest.raises(GroupNotFound):
        await broker.read_group(COMMANDS, GROUP, "c1")
    with pytest.raises(GroupNotFound):
        await broker.read_group("stellar:missing", GROUP, "c1", block_ms=50)
    with pytest.raises(GroupNotFound):
        await broker.claim_stale(COMMANDS, GROUP, "c1", min_idle_ms=0)
    with pytest.raises(GroupNotFound):
        await broker.pending_count(COMMANDS, GROUP)
