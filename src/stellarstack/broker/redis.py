"""RedisBroker: the Broker contract on Redis Streams and pub/sub (redis-py asyncio).

redis-py retries a command after a dropped connection (exponential backoff with jitter), so a
restarted Redis is picked up again without help; what still fails becomes BrokerUnavailable.
Blocking reads are issued in slices shorter than the socket timeout, so a long `block_ms`
never looks like a dead server, and `close()` interrupts them. Every call goes through a
`CallGuard` (see redis_calls.py for the Python 3.11 cancellation trap it avoids).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from stellarstack.broker.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    PendingEntry,
    StreamMessage,
    Subscription,
    parse_stream_id,
)
from stellarstack.broker.redis_calls import CallGuard
from stellarstack.broker.redis_pubsub import RedisSubscription

__all__ = ["RedisBroker"]


def _messages(raw: Any) -> list[StreamMessage]:
    # Entries deleted while pending come back without fields (Redis 6.2); they are skipped.
    return [StreamMessage(i, dict(f)) for i, f in raw or () if f is not None]


class RedisBroker(Broker):
    """Streams and pub/sub on one Redis server (or a Redis-compatible one)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        health_check_interval: int = 30,
        socket_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        max_connections: int = 1000,
    ) -> None:
        """Connect lazily to `url` (redis://, rediss://, unix://); credentials win over the URL's.

        Each open subscription and each blocking read holds one of `max_connections`.
        """
        self._client: Redis = Redis.from_url(
            url,
            decode_responses=True,
            health_check_interval=health_check_interval,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries),
            max_connections=max_connections,
        )
        # redis-py lets the URL's userinfo win over keyword arguments; the node's own ACL
        # user and token must win instead.
        credentials = {"username": username, "password": password}
        self._client.connection_pool.connection_kwargs.update(
            {k: v for k, v in credentials.items() if v is not None}
        )
        self._poll_s = float(health_check_interval or 30)
        # Leave a margin under the socket timeout for the reply to travel.
        self._slice_ms = max(1, int(socket_timeout * 1000 - min(1000.0, socket_timeout * 500)))
        self._guard = CallGuard()
        self._subscriptions: set[RedisSubscription] = set()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")

    async def _sliced(self, block_ms: int | None, read: Callable[[int | None], Any]) -> Any:
        """Call `read(block)` with blocks of at most one slice until it finds entries."""
        if not block_ms or block_ms < 0:
            return await self._guard.call(read(None))
        deadline = time.monotonic() + block_ms / 1000
        while True:
            remaining = int((deadline - time.monotonic()) * 1000)
            block = max(1, min(remaining, self._slice_ms))
            found = await self._guard.call_unless_closed(read(block))
            if found or self._closed or remaining <= self._slice_ms:
                return found or []

    # ----------------------------------------------------------------- streams

    async def ping(self) -> float:
        """Round trip to Redis in milliseconds."""
        self._check_open()
        started = time.perf_counter()
        await self._guard.call(self._client.ping())
        return (time.perf_counter() - started) * 1000

    async def append(
        self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None
    ) -> str:
        """XADD, trimming to about `maxlen` (whole macro nodes) when given."""
        self._check_open()
        if not fields:
            raise ValueError("a stream entry needs at least one field")
        payload: dict[Any, Any] = dict(fields)
        entry_id = await self._guard.call(
            self._client.xadd(stream, payload, maxlen=maxlen, approximate=True)
        )
        return str(entry_id)

    async def read(
        self, streams: Mapping[str, str], *, count: int = 100, block_ms: int | None = None
    ) -> list[tuple[str, StreamMessage]]:
        """XREAD after the given ids; `$` is pinned to the current tail once, before blocking."""
        self._check_open()
        after: dict[str, str] = {}
        for name, last in streams.items():
            if last == "$":
                if not block_ms:
                    continue  # nothing can come after the tail without waiting
                last = await self.last_id(name)
            parse_stream_id(last)
            after[name] = last
        if not after:
            return []

        def read_once(block: int | None) -> Awaitable[Any]:
            return self._client.xread(after, count=count, block=block)  # type: ignore[arg-type]

        raw = await self._sliced(block_ms, read_once)
        return [(name, message) for name, entries in raw for message in _messages(entries)]

    async def last_id(self, stream: str) -> str:
        """Id of the newest entry (XREVRANGE + - COUNT 1), "0-0" when there is none."""
        self._check_open()
        newest = await self._guard.call(self._client.xrevrange(stream, "+", "-", count=1))
        return str(newest[0][0]) if newest else "0-0"

    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """XGROUP CREATE … MKSTREAM, ignoring BUSYGROUP."""
        self._check_open()
        if start_id != "$":
            parse_stream_id(start_id)
        try:
            await self._guard.call(
                self._client.xgroup_create(stream, group, id=start_id, mkstream=True)
            )
        except BrokerError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[StreamMessage]:
        """XREADGROUP GROUP group consumer … STREAMS stream >."""
        self._check_open()

        def read_once(block: int | None) -> Awaitable[Any]:
            return self._client.xreadgroup(group, consumer, {stream: ">"}, count, block)

        raw = await self._sliced(block_ms, read_once)
        return [message for _, entries in raw for message in _messages(entries)]

    async def read_groups(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[tuple[str, StreamMessage]]:
        """XREADGROUP GROUP group consumer … STREAMS s1 s2 … > >: one call, one connection."""
        self._check_open()
        wanted = dict.fromkeys(streams, ">")
        if not wanted:
            return []

        def read_once(block: int | None) -> Awaitable[Any]:
            return self._client.xreadgroup(group, consumer, wanted, count, block)  # type: ignore[arg-type]

        raw = await self._sliced(block_ms, read_once)
        return [(str(name), message) for name, entries in raw for message in _messages(entries)]

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """XACK."""
        self._check_open()
        for entry_id in ids:
            parse_stream_id(entry_id)
        if not ids:
            return 0
        return int(await self._guard.call(self._client.xack(stream, group, *ids)))

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[StreamMessage]:
        """XAUTOCLAIM from the start of the pending list, then the delivery counts (XPENDING)."""
        self._check_open()
        claimed: list[StreamMessage] = []
        cursor = "0-0"
        while len(claimed) < count:
            cursor, raw, *_ = await self._guard.call(
                self._client.xautoclaim(
                    stream, group, consumer, min_idle_ms, cursor, count - len(claimed)
                )
            )
            claimed.extend(_messages(raw))
            if cursor == "0-0":
                break
        if not claimed:
            return []
        pipe = self._client.pipeline(transaction=False)
        for message in claimed:
            pipe.xpending_range(stream, group, message.id, message.id, 1)
        rows = await self._guard.call(pipe.execute())
        deliveries = {row["message_id"]: int(row["times_delivered"]) for r in rows for row in r}
        return [StreamMessage(m.id, m.fields, deliveries.get(m.id, m.deliveries)) for m in claimed]

    async def pending_count(self, stream: str, group: str) -> int:
        """XPENDING summary count."""
        self._check_open()
        summary = await self._guard.call(self._client.xpending(stream, group))
        return int(summary["pending"])

    async def pending(self, stream: str, group: str, *, count: int = 100) -> list[PendingEntry]:
        """XPENDING - + count."""
        self._check_open()
        rows = await self._guard.call(self._client.xpending_range(stream, group, "-", "+", count))
        return [
            PendingEntry(
                str(row["message_id"]),
                str(row["consumer"]),
                int(row["time_since_delivered"]),
                int(row["times_delivered"]),
            )
            for row in rows
        ]

    async def trim(self, stream: str, *, maxlen: int) -> int:
        """XTRIM MAXLEN = maxlen (exact)."""
        self._check_open()
        return int(
            await self._guard.call(self._client.xtrim(stream, maxlen=maxlen, approximate=False))
        )

    async def length(self, stream: str) -> int:
        """XLEN."""
        self._check_open()
        return int(await self._guard.call(self._client.xlen(stream)))

    # ----------------------------------------------------------------- pub/sub

    async def publish(self, channel: str, data: str) -> int:
        """PUBLISH; the count is the subscribers on this server."""
        self._check_open()
        return int(await self._guard.call(self._client.publish(channel, data)))

    def subscribe(self, *channels: str) -> Subscription:
        """A SUBSCRIBE on its own connection (confirmed once entered)."""
        self._check_open()
        subscription = RedisSubscription(
            self._client, channels, poll_s=self._poll_s, on_close=self._subscriptions.discard
        )
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        """Cancel blocked reads, end subscriptions, close the connection pool."""
        if self._closed:
            return
        self._closed = True
        await self._guard.close()
        for sub in list(self._subscriptions):
            await sub.aclose()
        await self._client.aclose()
