"""Wait for a condition in broker tests without asserting on timings."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["wait_until"]


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
) -> None:
    """Poll `condition` (plain or async) until it holds; fail when `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
