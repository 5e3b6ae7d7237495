"""Reliable read loops over a consumer group, on any Broker: one stream or many.

`StreamConsumer` reads one stream (the daemon's commands); `MultiStreamConsumer` reads many
with one XREADGROUP (the panel's node event streams), so a thousand streams cost one blocking
connection, not a thousand. Both share one loop; each iteration:

1. reclaims entries another consumer (or this one, before a crash) left pending for
   `min_idle_ms` (a multi-stream consumer sweeps its streams every `min_idle_ms / 2`);
2. moves entries delivered more than `max_deliveries` times to `<stream>:dead` (original id,
   fields, delivery count, group, last error seen here) and acknowledges them;
3. reads new entries, blocking up to `block_ms`;
4. hands each entry to the handler and acknowledges it once the handler returns; entries of
   one stream are handled in order, different streams concurrently. A handler exception
   leaves the entry pending, so it is retried after `min_idle_ms`.

Delivery is at least once: handlers must be idempotent (commands carry an id for that), and
`min_idle_ms` must exceed the longest a handler runs, or another consumer takes the entry over
while it is still being handled.

Usage::

    consumer = StreamConsumer(broker, "stellar:nodes:n1:commands", "daemon", "n1", execute)
    task = asyncio.create_task(consumer.run())
    ...
    consumer.stop()   # finishes the entries in hand, then run() returns
    await task

    events = MultiStreamConsumer(broker, "panel", "replica-1", apply)  # apply(stream, message)
    events.add_stream("stellar:nodes:n1:events")  # joins the next read
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

from stellarstack.broker.base import (
    Broker,
    BrokerUnavailable,
    GroupNotFound,
    StreamMessage,
)

__all__ = [
    "DEAD_LETTER_FIELDS",
    "Handler",
    "MultiStreamConsumer",
    "MultiStreamHandler",
    "StreamConsumer",
    "dead_letter_stream",
]

Handler = Callable[[StreamMessage], Awaitable[None]]
MultiStreamHandler = Callable[[str, StreamMessage], Awaitable[None]]

# Fields a dead-letter entry carries besides the original ones (underscored so they do not
# collide with a command's own fields): the entry's id, how many times a handler got it, the
# group, and the last handler error this process saw ("" when it failed elsewhere).
DEAD_LETTER_FIELDS = ("_original_id", "_deliveries", "_group", "_error")

_MAX_REMEMBERED_ERRORS = 1000

_log = structlog.get_logger("stellarstack.broker.consumer")


def dead_letter_stream(stream: str) -> str:
    """Where entries of `stream` go once they have failed too often."""
    return f"{stream}:dead"


class _GroupConsumer(abc.ABC):
    """The shared loop: reclaim, dead-letter, read, handle, ack (subclasses pick the streams)."""

    def __init__(
        self,
        broker: Broker,
        group: str,
        consumer: str,
        *,
        batch: int,
        block_ms: int,
        min_idle_ms: int,
        max_deliveries: int,
        start_id: str,
        dead_letter_maxlen: int | None,
        retry_backoff_s: float,
        log: Any,
    ) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.broker = broker
        self.group = group
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.start_id = start_id
        self.dead_letter_maxlen = dead_letter_maxlen
        self.retry_backoff_s = retry_backoff_s
        self._stop = asyncio.Event()
        self._errors: dict[tuple[str, str], str] = {}  # last handler error per pending entry
        self._log = log

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask run() to return once the entries in hand are handled (a blocked read ends)."""
        self._stop.set()

    async def run(self) -> None:
        """Loop until stop(); broker outages are logged and retried with backoff."""
        self._log.info("broker.consumer.started")
        backoff = self.retry_backoff_s
        while not self.stopping:
            try:
                await self.run_once()
                backoff = self.retry_backoff_s
            except BrokerUnavailable as exc:
                self._log.warning("broker.consumer.unavailable", error=str(exc), retry_s=backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        self._log.info("broker.consumer.stopped")

    async def run_once(self) -> int:
        """One iteration (reclaim, dead-letter, read, handle); return entries handled."""
        try:
            return await self._iteration()
        except GroupNotFound:
            # The group vanished (Redis restarted without persistence): create it again.
            self._log.warning("broker.consumer.group_missing")
            self._forget_groups()
            return 0

    @abc.abstractmethod
    def _forget_groups(self) -> None:
        """Create the groups again before the next read."""

    @abc.abstractmethod
    async def _iteration(self) -> int:
        """Reclaim or read, then handle."""

    @abc.abstractmethod
    async def _dispatch(self, stream: str, message: StreamMessage) -> None:
        """Call the handler."""

    async def _reclaim(self, stream: str) -> list[tuple[str, StreamMessage]]:
        """Entries of `stream` left pending too long, minus those dead-lettered now."""
        reclaimed = await self.broker.claim_stale(
            stream, self.group, self.consumer, min_idle_ms=self.min_idle_ms, count=self.batch
        )
        return [
            (stream, m) for m in reclaimed if not await self._dead_letter_if_exhausted(stream, m)
        ]

    async def _read_new(
        self, read: Awaitable[list[tuple[str, StreamMessage]]]
    ) -> list[tuple[str, StreamMessage]]:
        """Await a read; stop() abandons a blocked one (nothing is lost: see below)."""
        reading = asyncio.ensure_future(read)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not reading.done():
                # Anything Redis handed out meanwhile stays pending and is reclaimed later.
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
        return reading.result() if not reading.cancelled() else []

    async def _handle_all(self, todo: list[tuple[str, StreamMessage]]) -> None:
        """Handle entries: in order within a stream, streams concurrently."""
        by_stream: dict[str, list[StreamMessage]] = {}
        for stream, message in todo:
            by_stream.setdefault(stream, []).append(message)

        async def in_order(stream: str, messages: list[StreamMessage]) -> None:
            for message in messages:
                await self._handle(stream, message)

        if len(by_stream) == 1:
            await in_order(*next(iter(by_stream.items())))
        else:
            await asyncio.gather(*(in_order(s, ms) for s, ms in by_stream.items()))

    async def _handle(self, stream: str, message: StreamMessage) -> None:
        started = time.perf_counter()
        key = (stream, message.id)
        try:
            await self._dispatch(stream, message)
        except Exception as exc:
            if len(self._errors) >= _MAX_REMEMBERED_ERRORS:
                self._errors.pop(next(iter(self._errors)))
            self._errors[key] = f"{type(exc).__name__}: {exc}"[:1000]
            self._log.warning(
                "broker.consumer.handler_failed",
                entry_stream=stream,
                id=message.id,
                deliveries=message.deliveries,
                error=self._errors[key],
                exc_info=True,
            )
            return
        await self.broker.ack(stream, self.group, message.id)
        self._errors.pop(key, None)
        self._log.debug(
            "broker.consumer.handled",
            entry_stream=stream,
            id=message.id,
            deliveries=message.deliveries,
            ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _dead_letter_if_exhausted(self, stream: str, message: StreamMessage) -> bool:
        """Move an entry delivered too often to the dead-letter stream; True if moved."""
        if message.deliveries <= self.max_deliveries:
            return False
        fields = {
            **message.fields,
            "_original_id": message.id,
            "_deliveries": str(message.deliveries - 1),
            "_group": self.group,
            "_error": self._errors.pop((stream, message.id), ""),
        }
        dead = dead_letter_stream(stream)
        # Append before ack: a crash in between duplicates the dead letter, never loses it.
        await self.broker.append(dead, fields, maxlen=self.dead_letter_maxlen)
        await self.broker.ack(stream, self.group, message.id)
        self._log.error(
            "broker.consumer.dead_lettered",
            entry_stream=stream,
            id=message.id,
            deliveries=message.deliveries - 1,
            dead_letter_stream=dead,
            error=fields["_error"],
        )
        return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


class StreamConsumer(_GroupConsumer):
    """Reclaim, dead-letter, read, handle, ack: one consumer of a group on one stream."""

    def __init__(
        self,
        broker: Broker,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        batch: int = 10,
        block_ms: int = 1000,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        start_id: str = "0",
        dead_letter_maxlen: int | None = 10_000,
        retry_backoff_s: float = 0.5,
    ) -> None:
        """Consume `stream` as `consumer` of `group`; `start_id` applies when creating it."""
        super().__init__(
            broker,
            group,
            consumer,
            batch=batch,
            block_ms=block_ms,
            min_idle_ms=min_idle_ms,
            max_deliveries=max_deliveries,
            start_id=start_id,
            dead_letter_maxlen=dead_letter_maxlen,
            retry_backoff_s=retry_backoff_s,
            log=_log.bind(stream=stream, group=group, consumer=consumer),
        )
        self.stream = stream
        self.handler = handler
        self.dead_letter_stream = dead_letter_stream(stream)
        self._group_ready = False

    def _forget_groups(self) -> None:
        self._group_ready = False

    async def _dispatch(self, stream: str, message: StreamMessage) -> None:
        await self.handler(message)

    async def _read_one_stream(self) -> list[tuple[str, StreamMessage]]:
        found = await self.broker.read_group(
            self.stream, self.group, self.consumer, count=self.batch, block_ms=self.block_ms
        )
        return [(self.stream, message) for message in found]

    async def _iteration(self) -> int:
        if not self._group_ready:
            await self.broker.ensure_group(self.stream, self.group, start_id=self.start_id)
            self._group_ready = True
        todo = await self._reclaim(self.stream)
        if not todo and not self.stopping:
            todo = await self._read_new(self._read_one_stream())
        await self._handle_all(todo)  # drained even after stop(): these are in hand already
        return len(todo)


class MultiStreamConsumer(_GroupConsumer):
    """One consumer of a group over many streams, read together with one blocking call."""

    def __init__(
        self,
        broker: Broker,
        group: str,
        consumer: str,
        handler: MultiStreamHandler,
        *,
        streams: Iterable[str] = (),
        batch: int = 10,
        block_ms: int = 1000,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        start_id: str = "0",
        dead_letter_maxlen: int | None = 10_000,
        retry_backoff_s: float = 0.5,
    ) -> None:
        """Consume `streams` (more can join later) as `consumer` of `group`."""
        super().__init__(
            broker,
            group,
            consumer,
            batch=batch,
            block_ms=block_ms,
            min_idle_ms=min_idle_ms,
            max_deliveries=max_deliveries,
            start_id=start_id,
            dead_letter_maxlen=dead_letter_maxlen,
            retry_backoff_s=retry_backoff_s,
            log=_log.bind(group=group, consumer=consumer),
        )
        self.handler = handler
        self._streams: dict[str, None] = dict.fromkeys(streams)
        self._grouped: set[str] = set()  # streams whose group this consumer made sure of
        self._next_sweep = 0.0
        self._joined = asyncio.Event()

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams this consumer reads."""
        return tuple(self._streams)

    def add_stream(self, stream: str) -> None:
        """Read `stream` too, from the next read on (its group is created first)."""
        self._streams[stream] = None
        self._next_sweep = 0.0  # reclaim what a previous owner left pending without delay
        self._joined.set()

    def remove_stream(self, stream: str) -> None:
        """Stop reading `stream` after the read in progress (its pending entries stay)."""
        self._streams.pop(stream, None)
        self._grouped.discard(stream)

    def _forget_groups(self) -> None:
        self._grouped.clear()

    async def _dispatch(self, stream: str, message: StreamMessage) -> None:
        await self.handler(stream, message)

    async def _iteration(self) -> int:
        streams = list(self._streams)
        for stream in streams:
            if stream not in self._grouped:
                await self.broker.ensure_group(stream, self.group, start_id=self.start_id)
                self._grouped.add(stream)
        todo: list[tuple[str, StreamMessage]] = []
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.min_idle_ms / 2000
            for stream in streams:
                todo.extend(await self._reclaim(stream))
        if not todo and not self.stopping:
            if streams:
                todo = await self._read_new(
                    self.broker.read_groups(
                        streams, self.group, self.consumer, count=self.batch, block_ms=self.block_ms
                    )
                )
            else:
                await self._idle()
        await self._handle_all(todo)  # drained even after stop(): these are in hand already
        return len(todo)

    async def _idle(self) -> None:
        """No streams yet: wait for one to join (or stop), up to `block_ms`."""
        self._joined.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.block_ms / 1000):
                joined = asyncio.ensure_future(self._joined.wait())
                stopped = asyncio.ensure_future(self._stop.wait())
                try:
                    await asyncio.wait({joined, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    joined.cancel()
                    stopped.cancel()
