"""StreamConsumer: the one reliable read loop over a consumer group, on any Broker.

The daemon reads its commands with it and the panel its nodes' events. Each iteration:

1. reclaims entries another consumer (or this one, before a crash) left pending for
   `min_idle_ms`;
2. moves entries delivered more than `max_deliveries` times to `<stream>:dead` (original id,
   fields, delivery count, group, last error seen here) and acknowledges them;
3. reads new entries, blocking up to `block_ms`;
4. hands each entry to the handler in order and acknowledges it once the handler returns.
   A handler exception leaves the entry pending, so it is retried after `min_idle_ms`.

Delivery is at least once: handlers must be idempotent (commands carry an id for that), and
`min_idle_ms` must exceed the longest a handler runs, or another consumer takes the entry over
while it is still being handled.

Usage::

    consumer = StreamConsumer(broker, "stellar:nodes:n1:commands", "daemon", "n1", execute)
    task = asyncio.create_task(consumer.run())
    ...
    consumer.stop()   # finishes the entries in hand, then run() returns
    await task
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from stellarstack.broker.base import (
    Broker,
    BrokerUnavailable,
    GroupNotFound,
    StreamMessage,
)

__all__ = ["DEAD_LETTER_FIELDS", "Handler", "StreamConsumer", "dead_letter_stream"]

Handler = Callable[[StreamMessage], Awaitable[None]]

# Fields a dead-letter entry carries besides the original ones (underscored so they do not
# collide with a command's own fields): the entry's id, how many times a handler got it, the
# group, and the last handler error this process saw ("" when it failed elsewhere).
DEAD_LETTER_FIELDS = ("_original_id", "_deliveries", "_group", "_error")

_MAX_REMEMBERED_ERRORS = 1000

_log = structlog.get_logger("stellarstack.broker.consumer")


def dead_letter_stream(stream: str) -> str:
    """Where entries of `stream` go once they have failed too often."""
    return f"{stream}:dead"


class StreamConsumer:
    """Reclaim, dead-letter, read, handle, ack: one consumer of a consumer group."""

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
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.broker = broker
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.batch = batch
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.max_deliveries = max_deliveries
        self.start_id = start_id
        self.dead_letter_stream = dead_letter_stream(stream)
        self.dead_letter_maxlen = dead_letter_maxlen
        self.retry_backoff_s = retry_backoff_s
        self._stop = asyncio.Event()
        self._group_ready = False
        self._errors: dict[str, str] = {}  # last handler error per pending entry id
        self._log = _log.bind(stream=stream, group=group, consumer=consumer)

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
            self._group_ready = False
            return 0

    async def _iteration(self) -> int:
        if not self._group_ready:
            await self.broker.ensure_group(self.stream, self.group, start_id=self.start_id)
            self._group_ready = True
        reclaimed = await self.broker.claim_stale(
            self.stream, self.group, self.consumer, min_idle_ms=self.min_idle_ms, count=self.batch
        )
        todo = [m for m in reclaimed if not await self._dead_letter_if_exhausted(m)]
        if not todo and not self.stopping:
            todo = await self._read_new()
        for message in todo:  # drained even after stop(): these are in hand already
            await self._handle(message)
        return len(todo)

    async def _read_new(self) -> list[StreamMessage]:
        """Read new entries; stop() abandons a blocked read (nothing is lost: see below)."""
        read = asyncio.ensure_future(
            self.broker.read_group(
                self.stream, self.group, self.consumer, count=self.batch, block_ms=self.block_ms
            )
        )
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not read.done():
                # Anything Redis handed out meanwhile stays pending and is reclaimed later.
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)
        return read.result() if not read.cancelled() else []

    async def _handle(self, message: StreamMessage) -> None:
        started = time.perf_counter()
        try:
            await self.handler(message)
        except Exception as exc:
            if len(self._errors) >= _MAX_REMEMBERED_ERRORS:
                self._errors.pop(next(iter(self._errors)))
            self._errors[message.id] = f"{type(exc).__name__}: {exc}"[:1000]
            self._log.warning(
                "broker.consumer.handler_failed",
                id=message.id,
                deliveries=message.deliveries,
                error=self._errors[message.id],
                exc_info=True,
            )
            return
        await self.broker.ack(self.stream, self.group, message.id)
        self._errors.pop(message.id, None)
        self._log.debug(
            "broker.consumer.handled",
            id=message.id,
            deliveries=message.deliveries,
            ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _dead_letter_if_exhausted(self, message: StreamMessage) -> bool:
        """Move an entry delivered too often to the dead-letter stream; True if moved."""
        if message.deliveries <= self.max_deliveries:
            return False
        fields = {
            **message.fields,
            "_original_id": message.id,
            "_deliveries": str(message.deliveries - 1),
            "_group": self.group,
            "_error": self._errors.pop(message.id, ""),
        }
        # Append before ack: a crash in between duplicates the dead letter, never loses it.
        await self.broker.append(self.dead_letter_stream, fields, maxlen=self.dead_letter_maxlen)
        await self.broker.ack(self.stream, self.group, message.id)
        self._log.error(
            "broker.consumer.dead_lettered",
            id=message.id,
            deliveries=message.deliveries - 1,
            dead_letter_stream=self.dead_letter_stream,
            error=fields["_error"],
        )
        return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
