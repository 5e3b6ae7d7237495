"""Leases: one holder at a time, fencing numbers grow, expiry hands over, stale holders lose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stellarstack.panel.leases import LeasedLoop, LeaseStore, LocalLeases, RedisLeases


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LeaseStore]:
    """In-process leases and Redis leases: the same contract."""
    if request.param == "memory":
        instance: LeaseStore = LocalLeases()
    else:
        instance = RedisLeases(request.getfixturevalue("redis_url"))
    yield instance
    await instance.close()


async def test_only_one_replica_holds_a_lease(store: LeaseStore) -> None:
    first, second = store.lease("sweep", ttl=5), store.lease("sweep", ttl=5)
    assert await first.refresh()
    assert not await second.refresh()
    assert first.held and not second.held
    assert await first.refresh()  # renewing keeps it


async def test_an_expired_lease_passes_on_with_a_larger_fencing_number(store: LeaseStore) -> None:
    first, second = store.lease("sweep", ttl=0.2), store.lease("sweep", ttl=5)
    assert await first.refresh()
    fence = first.fence
    await asyncio.sleep(0.3)
    assert not first.held  # judged on the local clock, before anyone else could take it
    assert await second.refresh()
    assert second.fence is not None and fence is not None and second.fence > fence
    assert not await first.refresh()  # the stale holder cannot renew someone else's lease
    assert first.fence is None


async def test_a_released_lease_is_free_at_once_and_only_its_holder_can_release(
    store: LeaseStore,
) -> None:
    first, second = store.lease("sweep", ttl=30), store.lease("sweep", ttl=30)
    assert await first.refresh()
    await store.release("sweep", second.token)  # not the holder: no effect
    assert not await second.refresh()
    await first.release()
    assert await second.refresh()


async def test_of_two_leased_loops_only_one_does_the_work(store: LeaseStore) -> None:
    calls: list[str] = []

    def work(name: str) -> LeasedLoop:
        async def run() -> None:
            calls.append(name)

        return LeasedLoop(store.lease("sweep", ttl=1), run, period=0.02)

    loops = [work("a"), work("b")]
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    await asyncio.sleep(0.3)
    for loop in loops:
        await loop.stop()
    await asyncio.gather(*tasks)
    assert len(calls) > 3 and len(set(calls)) == 1
    # Stopping released the lease: a newcomer gets it without waiting for the expiry.
    assert await store.lease("sweep", ttl=1).refresh()
