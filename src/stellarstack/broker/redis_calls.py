"""How RedisBroker awaits redis-py: errors translated, cancellation kept, close() honoured.

Python 3.11's `asyncio.wait_for`, which redis-py uses to send every command when a socket
timeout is set, returns normally when a cancellation lands just as the send completes: the
cancellation is lost and the caller carries on (a consumer task that never stops). So each
call runs as its own task and the caller waits with `asyncio.wait`, which always raises
CancelledError in the caller; the abandoned call is cancelled and its outcome discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import redis.exceptions as redis_errors

from stellarstack.broker.base import (
    BrokerError,
    BrokerPermissionDenied,
    BrokerUnavailable,
    GroupNotFound,
)

__all__ = ["CallGuard", "translated"]

_T = TypeVar("_T")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py errors into broker errors."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise BrokerUnavailable(f"Redis unreachable: {exc}") from exc
    except redis_errors.NoPermissionError as exc:
        raise BrokerPermissionDenied(str(exc)) from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise GroupNotFound(str(exc)) from exc
        raise BrokerError(str(exc)) from exc
    except redis_errors.RedisError as exc:
        raise BrokerError(str(exc)) from exc


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "never retrieved"


class CallGuard:
    """Runs redis-py calls for one owner (the broker, a subscription) until it closes."""

    def __init__(self) -> None:
        self._closed: asyncio.Future[None] | None = None
        self._running: set[asyncio.Future[Any]] = set()

    def _closed_future(self) -> asyncio.Future[None]:
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        return self._closed

    def _start(self, call: Awaitable[_T]) -> asyncio.Future[_T]:
        task = asyncio.ensure_future(call)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(_discard_outcome)
        return task

    async def call(self, call: Awaitable[_T]) -> _T:
        """Await a command; cancelling the caller cancels it."""
        task = self._start(call)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        with translated():
            return task.result()

    async def call_unless_closed(self, call: Awaitable[_T]) -> _T | None:
        """Await a blocking command; None when close() interrupts it."""
        task = self._start(call)
        either: set[asyncio.Future[Any]] = {task, self._closed_future()}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done() or task.cancelled():  # close() got there first
            task.cancel()
            return None
        with translated():
            return task.result()

    async def close(self, grace_s: float = 1.0) -> None:
        """Interrupt blocked calls and give them `grace_s` to let go of their connections."""
        closed = self._closed_future()
        if not closed.done():
            closed.set_result(None)
        running = set(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=grace_s)
