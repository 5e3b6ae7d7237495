"""The `broker` fixture: every contract test runs on MemoryBroker and on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stellarstack.broker import Broker, MemoryBroker, RedisBroker


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """A fresh, empty broker of each implementation."""
    instance: Broker
    if request.param == "memory":
        instance = MemoryBroker()
    else:
        instance = RedisBroker(str(request.getfixturevalue("redis_url")))
    yield instance
    await instance.close()
