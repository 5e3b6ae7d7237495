"""RedisBroker: the Broker contract on Redis Streams and pub/sub (redis-py asyncio).

redis-py retries a command after a dropped connection (exponential backoff with jitter), so a
restarted Redis is picked up again without help; what still fails becomes BrokerUnavailable.
Blocking reads are issued in slices shorter than the socket timeout, so a long `block_ms`
never looks like a dead server, and `close()` cancels them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any, TypeVar

import redis.exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from stellarstack.broker.base import (
    Broker,
    BrokerError,
    BrokerPermissionDenied,
    BrokerUnavailable,
    GroupNotFound,
    PendingEntry,
    PubSubMessage,
    StreamMessage,
    Subscription,
    parse_stream_id,
)

__all__ = ["RedisBroker"]

_T = TypeVar("_T")


@contextlib.contextmanager
def _translated() -> Iterator[None]:
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
        self._blocked: set[asyncio.Future[Any]] = set()
        self._subscriptions: set[_RedisSubscription] = set()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")

    async def _cancellable(self, call: Awaitable[_T]) -> _T | None:
        """Await a blocking command that `close()` may cancel (then None)."""
        task = asyncio.ensure_future(call)
        self._blocked.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and (current is None or current.cancelling() == 0):
                return None
            raise
        finally:
            self._blocked.discard(task)

    async def _sliced(self, block_ms: int | None, read: Any) -> Any:
        """Call `read(block)` with blocks of at most one slice until it finds entries."""
        if not block_ms or block_ms < 0:
            with _translated():
                return await read(None)
        deadline = time.monotonic() + block_ms / 1000
        while True:
            remaining = int((deadline - time.monotonic()) * 1000)
            with _translated():
                found = await self._cancellable(read(max(1, min(remaining, self._slice_ms))))
            if found or self._closed or remaining <= self._slice_ms:
                return found or []

    # ----------------------------------------------------------------- streams

    async def ping(self) -> float:
        """Round trip to Redis in milliseconds."""
        self._check_open()
        started = time.perf_counter()
        with _translated():
            await self._client.ping()
        return (time.perf_counter() - started) * 1000

    async def append(
        self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None
    ) -> str:
        """XADD, trimming to about `maxlen` (whole macro nodes) when given."""
        self._check_open()
        if not fields:
            raise ValueError("a stream entry needs at least one field")
        payload: dict[Any, Any] = dict(fields)
        with _translated():
            entry_id = await self._client.xadd(stream, payload, maxlen=maxlen, approximate=True)
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
        with _translated():
            newest = await self._client.xrevrange(stream, "+", "-", count=1)
        return str(newest[0][0]) if newest else "0-0"

    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """XGROUP CREATE … MKSTREAM, ignoring BUSYGROUP."""
        self._check_open()
        if start_id != "$":
            parse_stream_id(start_id)
        try:
            with _translated():
                await self._client.xgroup_create(stream, group, id=start_id, mkstream=True)
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

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """XACK."""
        self._check_open()
        for entry_id in ids:
            parse_stream_id(entry_id)
        if not ids:
            return 0
        with _translated():
            return int(await self._client.xack(stream, group, *ids))

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[StreamMessage]:
        """XAUTOCLAIM from the start of the pending list, then the delivery counts (XPENDING)."""
        self._check_open()
        claimed: list[StreamMessage] = []
        cursor = "0-0"
        with _translated():
            while len(claimed) < count:
                cursor, raw, *_ = await self._client.xautoclaim(
                    stream, group, consumer, min_idle_ms, cursor, count - len(claimed)
                )
                claimed.extend(_messages(raw))
                if cursor == "0-0":
                    break
            if not claimed:
                return []
            pipe = self._client.pipeline(transaction=False)
            for message in claimed:
                pipe.xpending_range(stream, group, message.id, message.id, 1)
            rows = await pipe.execute()
        deliveries = {row["message_id"]: int(row["times_delivered"]) for r in rows for row in r}
        return [
            StreamMessage(m.id, m.fields, deliveries.get(m.id, m.deliveries)) for m in claimed
        ]

    async def pending_count(self, stream: str, group: str) -> int:
        """XPENDING summary count."""
        self._check_open()
        with _translated():
            summary = await self._client.xpending(stream, group)
        return int(summary["pending"])

    async def pending(self, stream: str, group: str, *, count: int = 100) -> list[PendingEntry]:
        """XPENDING - + count."""
        self._check_open()
        with _translated():
            rows = await self._client.xpending_range(stream, group, "-", "+", count)
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
        with _translated():
            return int(await self._client.xtrim(stream, maxlen=maxlen, approximate=False))

    async def length(self, stream: str) -> int:
        """XLEN."""
        self._check_open()
        with _translated():
            return int(await self._client.xlen(stream))

    # ----------------------------------------------------------------- pub/sub

    async def publish(self, channel: str, data: str) -> int:
        """PUBLISH; the count is the subscribers on this server."""
        self._check_open()
        with _translated():
            return int(await self._client.publish(channel, data))

    def subscribe(self, *channels: str) -> Subscription:
        """A SUBSCRIBE on its own connection (confirmed once entered)."""
        return _RedisSubscription(self, channels)

    async def close(self) -> None:
        """Cancel blocked reads, end subscriptions, close the connection pool."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._blocked):
            task.cancel()
        for sub in list(self._subscriptions):
            await sub.aclose()
        await self._client.aclose()


class _RedisSubscription(Subscription):
    """One redis-py PubSub connection; redis-py resubscribes it after a reconnect."""

    def __init__(self, broker: RedisBroker, channels: tuple[str, ...]) -> None:
        self.channels = tuple(dict.fromkeys(channels))
        self._broker = broker
        self._pubsub: PubSub | None = None
        self._early: list[PubSubMessage] = []
        self._reader: asyncio.Future[Any] | None = None
        self._closed = False

    async def start(self) -> None:
        """SUBSCRIBE and wait for Redis to confirm every channel."""
        if self._pubsub is not None or self._closed:
            return
        self._broker._check_open()
        self._pubsub = self._broker._client.pubsub()
        self._broker._subscriptions.add(self)
        try:
            with _translated():
                await self._pubsub.subscribe(*self.channels)
                confirmed = 0
                while confirmed < len(self.channels):
                    raw = await self._pubsub.get_message(timeout=self._broker._poll_s)
                    if raw is None:
                        raise BrokerUnavailable("Redis did not confirm the subscription")
                    if raw["type"] == "subscribe":
                        confirmed += 1
                    elif raw["type"] == "message":
                        self._early.append(PubSubMessage(raw["channel"], raw["data"]))
        except BaseException:
            await self.aclose()
            raise

    async def __anext__(self) -> PubSubMessage:
        """The next message; polls so redis-py can send its health checks."""
        await self.start()
        while not self._closed and self._pubsub is not None:
            if self._early:
                return self._early.pop(0)
            self._reader = asyncio.ensure_future(
                self._pubsub.get_message(timeout=self._broker._poll_s)
            )
            try:
                with _translated():
                    raw = await self._reader
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._closed and (current is None or current.cancelling() == 0):
                    break
                raise
            finally:
                self._reader = None
            if raw is not None and raw["type"] == "message":
                return PubSubMessage(str(raw["channel"]), str(raw["data"]))
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop a blocked reader and drop the connection (which unsubscribes)."""
        if self._closed:
            return
        self._closed = True
        self._broker._subscriptions.discard(self)
        if self._reader is not None:
            self._reader.cancel()
        if self._pubsub is not None:
            with contextlib.suppress(redis_errors.RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
