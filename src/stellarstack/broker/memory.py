"""MemoryBroker: the Broker contract in one process, for the embedded default and tests.

It mirrors Redis semantics closely enough that the same contract suite passes on both: entry
ids `<ms>-<seq>` that only grow, consumer groups with a pending entries list (owner, delivery
count, idle time), XAUTOCLAIM-style reclaim, blocking reads that wake on append, pub/sub
fan-out. Everything runs on the event loop; nothing is persisted.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from stellarstack.broker.base import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    GroupNotFound,
    PendingEntry,
    PubSubMessage,
    StreamMessage,
    Subscription,
    format_stream_id,
    parse_stream_id,
)

__all__ = ["MemoryBroker"]

_T = TypeVar("_T")
_Key = tuple[int, int]

# A subscriber this far behind is cut off, as Redis does with its pub/sub output buffer limit.
SUBSCRIBER_QUEUE_LIMIT = 10_000


def _now_ms() -> float:
    return time.monotonic() * 1000


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass
class _Group:
    last_delivered: _Key
    # Insertion order is id order: entries join only through `>` reads, in increasing id order.
    pel: dict[_Key, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    keys: list[_Key] = field(default_factory=list)
    entries: dict[_Key, dict[str, str]] = field(default_factory=dict)
    last_generated: _Key = (0, 0)
    groups: dict[str, _Group] = field(default_factory=dict)

    def after(self, key: _Key, count: int) -> list[_Key]:
        start = bisect.bisect_right(self.keys, key)
        return self.keys[start : start + count]

    def trim_to(self, maxlen: int) -> int:
        excess = max(0, len(self.keys) - maxlen)
        for key in self.keys[:excess]:
            del self.entries[key]
        del self.keys[:excess]
        return excess


class MemoryBroker(Broker):
    """In-process streams and pub/sub with Redis semantics (single process only)."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._subscribers: dict[str, set[_MemorySubscription]] = {}
        self._closed = False

    # ----------------------------------------------------------------- plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")

    async def _ready(self) -> None:
        """Yield to the loop first, as a network round trip would."""
        # So every call is a point where the caller can be cancelled, and a polling loop
        # cannot starve the other tasks.
        await asyncio.sleep(0)
        self._check_open()

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        data = self._streams.get(stream)
        found = data.groups.get(group) if data is not None else None
        if data is None or found is None:
            raise GroupNotFound(f"no such stream {stream!r} or consumer group {group!r}")
        return data, found

    def _next_key(self, data: _Stream) -> _Key:
        now = int(time.time() * 1000)
        last_ms, last_seq = data.last_generated
        return (now, 0) if now > last_ms else (last_ms, last_seq + 1)

    def _wake(self, stream: str) -> None:
        for waiter in self._waiters.pop(stream, set()):
            if not waiter.done():
                waiter.set_result(None)

    async def _blocking(
        self, streams: Iterable[str], block_ms: int | None, attempt: Callable[[], list[_T]]
    ) -> list[_T]:
        """Run `attempt` until it finds something, waiting for appends up to `block_ms`."""
        self._check_open()
        found = attempt()
        if found or not block_ms or block_ms < 0:
            return found
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        names = list(streams)
        while not self._closed and (remaining := deadline - loop.time()) > 0:
            waiter: asyncio.Future[None] = loop.create_future()
            for name in names:
                self._waiters.setdefault(name, set()).add(waiter)
            try:
                await asyncio.wait({waiter}, timeout=remaining)
            finally:
                for name in names:
                    self._waiters.get(name, set()).discard(waiter)
            if self._closed:
                return []
            found = attempt()
            if found:
                return found
        return found

    # ----------------------------------------------------------------- streams

    async def ping(self) -> float:
        """Round trip in milliseconds (a scheduler hop here)."""
        started = time.perf_counter()
        await self._ready()
        return (time.perf_counter() - started) * 1000

    async def append(
        self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None
    ) -> str:
        """Append an entry, trimming exactly to `maxlen` when given; return its id."""
        await self._ready()
        if not fields:
            raise ValueError("a stream entry needs at least one field")
        data = self._streams.setdefault(stream, _Stream())
        key = self._next_key(data)
        data.last_generated = key
        data.keys.append(key)
        data.entries[key] = {str(k): str(v) for k, v in fields.items()}
        if maxlen is not None:
            data.trim_to(maxlen)
        self._wake(stream)
        return format_stream_id(key)

    async def read(
        self, streams: Mapping[str, str], *, count: int = 100, block_ms: int | None = None
    ) -> list[tuple[str, StreamMessage]]:
        """Entries after the given ids, waiting up to `block_ms` for one."""
        await self._ready()
        after: dict[str, _Key] = {}
        for name, last in streams.items():
            if last == "$":
                data = self._streams.get(name)
                after[name] = data.last_generated if data is not None else (0, 0)
            else:
                after[name] = parse_stream_id(last)

        def attempt() -> list[tuple[str, StreamMessage]]:
            found: list[tuple[str, StreamMessage]] = []
            for name, key in after.items():
                data = self._streams.get(name)
                if data is None:
                    continue
                for k in data.after(key, count):
                    found.append((name, StreamMessage(format_stream_id(k), dict(data.entries[k]))))
            return found

        return await self._blocking(after, block_ms, attempt)

    async def last_id(self, stream: str) -> str:
        """Id of the newest entry, "0-0" when there is none."""
        await self._ready()
        data = self._streams.get(stream)
        return format_stream_id(data.keys[-1]) if data is not None and data.keys else "0-0"

    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create the group (and the stream) unless it exists."""
        await self._ready()
        data = self._streams.setdefault(stream, _Stream())
        if group not in data.groups:
            start = data.last_generated if start_id == "$" else parse_stream_id(start_id)
            data.groups[group] = _Group(last_delivered=start)

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[StreamMessage]:
        """Hand entries the group has not delivered yet to `consumer`."""
        found = await self.read_groups([stream], group, consumer, count=count, block_ms=block_ms)
        return [message for _, message in found]

    async def read_groups(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[tuple[str, StreamMessage]]:
        """Hand undelivered entries of every stream (up to `count` each) to `consumer`."""
        await self._ready()
        names = list(dict.fromkeys(streams))
        if not names:
            return []
        for name in names:
            self._group(name, group)

        def attempt() -> list[tuple[str, StreamMessage]]:
            # Check every group first: a missing one fails the call without delivering any.
            groups = [(name, *self._group(name, group)) for name in names]
            now = _now_ms()
            found: list[tuple[str, StreamMessage]] = []
            for name, data, grp in groups:
                keys = data.after(grp.last_delivered, count)
                for key in keys:
                    grp.pel[key] = _Pending(consumer=consumer, delivered_at=now, deliveries=1)
                    found.append(
                        (name, StreamMessage(format_stream_id(key), dict(data.entries[key])))
                    )
                if keys:
                    grp.last_delivered = keys[-1]
            return found

        return await self._blocking(names, block_ms, attempt)

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Drop entries from the pending list; return how many were there."""
        await self._ready()
        keys = [parse_stream_id(i) for i in ids]
        try:
            _, grp = self._group(stream, group)
        except GroupNotFound:
            return 0  # as XACK: nothing was pending
        return sum(grp.pel.pop(key, None) is not None for key in keys)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[StreamMessage]:
        """Move entries idle for `min_idle_ms` to `consumer`, counting a delivery each."""
        await self._ready()
        data, grp = self._group(stream, group)
        now = _now_ms()
        claimed: list[StreamMessage] = []
        for key, entry in list(grp.pel.items()):
            if len(claimed) >= count:
                break
            if now - entry.delivered_at < min_idle_ms:
                continue
            fields = data.entries.get(key)
            if fields is None:  # trimmed away while pending: Redis 7 drops it too
                del grp.pel[key]
                continue
            entry.consumer, entry.delivered_at = consumer, now
            entry.deliveries += 1
            claimed.append(StreamMessage(format_stream_id(key), dict(fields), entry.deliveries))
        return claimed

    async def pending_count(self, stream: str, group: str) -> int:
        """Number of delivered, unacknowledged entries."""
        await self._ready()
        return len(self._group(stream, group)[1].pel)

    async def pending(self, stream: str, group: str, *, count: int = 100) -> list[PendingEntry]:
        """The oldest pending entries with owner, idle time and deliveries."""
        await self._ready()
        _, grp = self._group(stream, group)
        now = _now_ms()
        return [
            PendingEntry(format_stream_id(k), p.consumer, int(now - p.delivered_at), p.deliveries)
            for k, p in list(grp.pel.items())[:count]
        ]

    async def trim(self, stream: str, *, maxlen: int) -> int:
        """Keep the newest `maxlen` entries."""
        await self._ready()
        data = self._streams.get(stream)
        return data.trim_to(maxlen) if data is not None else 0

    async def length(self, stream: str) -> int:
        """Number of entries."""
        await self._ready()
        data = self._streams.get(stream)
        return len(data.keys) if data is not None else 0

    # ----------------------------------------------------------------- pub/sub

    async def publish(self, channel: str, data: str) -> int:
        """Queue the message for every subscriber of the channel."""
        await self._ready()
        message = PubSubMessage(channel, data)
        return sum(sub.deliver(message) for sub in list(self._subscribers.get(channel, ())))

    def subscribe(self, *channels: str) -> Subscription:
        """A subscription to the channels (effective once entered)."""
        return _MemorySubscription(self, channels)

    def _register(self, sub: _MemorySubscription) -> None:
        self._check_open()
        for channel in sub.channels:
            self._subscribers.setdefault(channel, set()).add(sub)

    def _unregister(self, sub: _MemorySubscription) -> None:
        for channel in sub.channels:
            subs = self._subscribers.get(channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[channel]

    async def close(self) -> None:
        """Wake blocked readers, end subscriptions; later calls raise BrokerUnavailable."""
        self._closed = True
        for stream in list(self._waiters):
            self._wake(stream)
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.aclose()


class _End:
    """Queue sentinel: the subscription ended (closed, or fell behind)."""

    def __init__(self, error: BrokerError | None = None) -> None:
        self.error = error


class _MemorySubscription(Subscription):
    """A subscriber queue registered with the broker while open."""

    def __init__(self, broker: MemoryBroker, channels: tuple[str, ...]) -> None:
        self.channels = tuple(dict.fromkeys(channels))
        self._broker = broker
        self._queue: asyncio.Queue[PubSubMessage | _End] = asyncio.Queue()
        self._state = "new"  # new -> open -> closed

    async def start(self) -> None:
        """Register with the broker (idempotent)."""
        if self._state == "new":
            self._broker._register(self)
            self._state = "open"

    def deliver(self, message: PubSubMessage) -> bool:
        """Queue a published message; cut the subscriber off when it fell too far behind."""
        if self._state != "open":
            return False
        if self._queue.qsize() >= SUBSCRIBER_QUEUE_LIMIT:
            self._end(BrokerError("subscriber fell behind and was disconnected"))
            return False
        self._queue.put_nowait(message)
        return True

    async def __anext__(self) -> PubSubMessage:
        """The next message published on a subscribed channel."""
        await self.start()
        if self._state == "closed" and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later call ends the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def _end(self, error: BrokerError | None = None) -> None:
        if self._state == "open":
            self._broker._unregister(self)
        if self._state != "closed":
            self._state = "closed"
            self._queue.put_nowait(_End(error))

    async def aclose(self) -> None:
        """Unregister; a blocked reader stops."""
        self._end()
