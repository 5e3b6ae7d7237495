"""RedisSubscription: one SUBSCRIBE on its own connection, as a broker `Subscription`.

redis-py resubscribes the connection by itself after a reconnect (a restarted Redis); messages
published while it was away are lost, as pub/sub always is. The panel should share one
subscription per channel set among its SSE clients rather than open one per browser.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import redis.exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from stellarstack.broker.base import BrokerUnavailable, PubSubMessage, Subscription
from stellarstack.broker.redis_calls import CallGuard

__all__ = ["RedisSubscription"]


class RedisSubscription(Subscription):
    """A redis-py PubSub whose reads `aclose()` (or the broker's close) interrupts."""

    def __init__(
        self,
        client: Redis,
        channels: tuple[str, ...],
        *,
        poll_s: float,
        on_close: Callable[[RedisSubscription], None],
    ) -> None:
        """Prepare a subscription; nothing is sent before `start()`."""
        self.channels = tuple(dict.fromkeys(channels))
        self._client = client
        self._poll_s = poll_s
        self._on_close = on_close
        self._pubsub: PubSub | None = None
        self._early: list[PubSubMessage] = []
        self._guard = CallGuard()
        self._closed = False

    async def start(self) -> None:
        """SUBSCRIBE and wait until Redis confirmed every channel."""
        if self._pubsub is not None or self._closed:
            return
        self._pubsub = self._client.pubsub()
        try:
            await self._guard.call(self._pubsub.subscribe(*self.channels))
            confirmed = 0
            while confirmed < len(self.channels):
                raw = await self._guard.call(self._pubsub.get_message(timeout=self._poll_s))
                if raw is None:
                    raise BrokerUnavailable("Redis did not confirm the subscription")
                if raw["type"] == "subscribe":
                    confirmed += 1
                elif raw["type"] == "message":
                    self._early.append(_message(raw))
        except BaseException:
            await self.aclose()
            raise

    async def __anext__(self) -> PubSubMessage:
        """The next message; the read times out now and then so health checks can run."""
        await self.start()
        while not self._closed and self._pubsub is not None:
            if self._early:
                return self._early.pop(0)
            raw = await self._guard.call_unless_closed(
                self._pubsub.get_message(timeout=self._poll_s)
            )
            if raw is not None and raw["type"] == "message":
                return _message(raw)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop a blocked reader and drop the connection (which unsubscribes)."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        await self._guard.close()
        if self._pubsub is not None:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]


def _message(raw: dict[str, Any]) -> PubSubMessage:
    return PubSubMessage(str(raw["channel"]), str(raw["data"]))
