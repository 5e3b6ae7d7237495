"""Bounded waits for asynchronous outcomes (output lines, stream events)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from stellarstack.broker import Broker
from stellarstack.daemon.runtime import OutputLine, OutputStream
from stellarstack.protocol import Event

__all__ = ["collect_until", "events_until", "eventually"]


async def collect_until(
    output: OutputStream, predicate: Callable[[OutputLine], bool], seconds: float = 15.0
) -> list[OutputLine]:
    """Lines read until one matches `predicate` (included); fails after `seconds`."""
    seen: list[OutputLine] = []
    async with asyncio.timeout(seconds):
        async for line in output:
            seen.append(line)
            if predicate(line):
                return seen
    raise AssertionError(f"output ended before the expected line; saw {seen!r}")


async def events_until(
    broker: Broker, stream: str, predicate: Callable[[list[Event]], bool], seconds: float = 15.0
) -> list[Event]:
    """All events of `stream` once `predicate(events)` holds; fails after `seconds`."""
    events: list[Event] = []
    last = "0"
    try:
        async with asyncio.timeout(seconds):
            while not predicate(events):
                for _, message in await broker.read({stream: last}, block_ms=200):
                    last = message.id
                    events.append(Event.from_fields(message.fields))
    except TimeoutError:
        raise AssertionError(f"condition not met on {stream}; events: {events!r}") from None
    return events


async def eventually(check: Callable[[], bool | Awaitable[bool]], seconds: float = 15.0) -> None:
    """Poll `check` (plain or async) until it returns True; fails after `seconds`."""

    async def holds() -> bool:
        outcome = check()
        return await outcome if inspect.isawaitable(outcome) else outcome

    try:
        async with asyncio.timeout(seconds):
            while not await holds():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError("condition not met in time") from None
