"""A stream consumer that runs entries concurrently by lane: in order within one, lanes apart.

`LanedStreamConsumer` is a `StreamConsumer` whose read loop does not wait for its handler.
Each entry goes to the lane `lane_of(entry)` names (the daemon: one lane per server):

- entries of one lane run one after the other, in the order they were read;
- different lanes run side by side, at most `max_concurrent` handlers at a time;
- entries of no lane (`lane_of` returns None) start at once, outside that bound.

An entry is still acknowledged only once its handler returns, so one whose handler never
finished (a crash, a cancelled stop) stays pending and is delivered again. The loop keeps
reading while entries run, up to `max_in_hand` entries taken but not finished.

Reclaiming stale entries is skipped while an entry in hand is older than half of
`min_idle_ms`: a reclaim would hand this consumer back an entry it is still running (and
count a delivery of it). `recover()` takes back at once what a previous life of this consumer
left pending, before `run()`.

Usage::

    consumer = LanedStreamConsumer(broker, stream, "daemon", "n1", execute,
                                   lane_of=server_of, max_concurrent=16)
    await consumer.recover()
    task = asyncio.create_task(consumer.run())
    ...
    consumer.stop()   # running handlers finish; queued entries stay pending for next time
    await task
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Coroutine
from typing import Any

from stellarstack.broker.base import Broker, StreamMessage
from stellarstack.broker.consumer import Handler, StreamConsumer

__all__ = ["LaneOf", "LanedStreamConsumer"]

LaneOf = Callable[[StreamMessage], str | None]
"""Names the lane of an entry; None runs it at once, outside lanes and the bound."""


class LanedStreamConsumer(StreamConsumer):
    """A StreamConsumer running entries of different lanes concurrently, each lane in order."""

    def __init__(
        self,
        broker: Broker,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        lane_of: LaneOf,
        max_concurrent: int = 16,
        max_in_hand: int = 256,
        **options: Any,
    ) -> None:
        """Like StreamConsumer (same `options`), plus the lanes and the bounds."""
        if max_concurrent < 1 or max_in_hand < 1:
            raise ValueError("max_concurrent and max_in_hand must be at least 1")
        super().__init__(broker, stream, group, consumer, handler, **options)
        self.lane_of = lane_of
        self.max_concurrent = max_concurrent
        self.max_in_hand = max_in_hand
        self._slots = asyncio.Semaphore(max_concurrent)
        self._queues: dict[str, collections.deque[StreamMessage]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # lane workers and lane-less entries
        self._in_hand: dict[str, float] = {}  # entry id -> monotonic time it was taken
        self._room = asyncio.Event()
        self._room.set()
        self._busy = 0

    @property
    def in_hand(self) -> int:
        """Entries taken and not finished (running or queued in a lane)."""
        return len(self._in_hand)

    @property
    def busy(self) -> int:
        """Handlers of lane entries running now (never above `max_concurrent`)."""
        return self._busy

    async def recover(self) -> int:
        """Take back every entry pending for the group at once and queue it; return how many.

        For a consumer that is the group's only one, at its start: whatever is pending then was
        abandoned by a crash, so waiting `min_idle_ms` for it would only add delay.
        """
        await self._ensure_group()
        room = self.max_in_hand - len(self._in_hand)
        if room <= 0:
            return 0
        claimed = await self.broker.claim_stale(
            self.stream, self.group, self.consumer, min_idle_ms=0, count=room
        )
        todo = [
            (self.stream, m)
            for m in claimed
            if m.id not in self._in_hand
            and not await self._dead_letter_if_exhausted(self.stream, m)
        ]
        await self._handle_all(todo)
        return len(todo)

    async def run(self) -> None:
        """Loop until stop(), then wait for the running handlers (queued ones stay pending)."""
        try:
            await super().run()
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._queues.clear()
            self._in_hand.clear()
            self._room.set()

    async def _ensure_group(self) -> None:
        if not self._group_ready:
            await self.broker.ensure_group(self.stream, self.group, start_id=self.start_id)
            self._group_ready = True

    async def _reclaim(self, stream: str) -> list[tuple[str, StreamMessage]]:
        """Reclaim only while no entry in hand could be stale itself."""
        if self._in_hand:
            oldest = time.monotonic() - min(self._in_hand.values())
            if oldest * 1000 >= self.min_idle_ms / 2:
                return []
        found = await super()._reclaim(stream)
        return [(s, m) for s, m in found if m.id not in self._in_hand]

    async def _read_one_stream(self) -> list[tuple[str, StreamMessage]]:
        """Wait for room in hand, then read at most that many new entries."""
        while len(self._in_hand) >= self.max_in_hand:
            self._room.clear()
            await self._room.wait()
        count = min(self.batch, self.max_in_hand - len(self._in_hand))
        found = await self.broker.read_group(
            self.stream, self.group, self.consumer, count=count, block_ms=self.block_ms
        )
        return [(self.stream, message) for message in found]

    async def _handle_all(self, todo: list[tuple[str, StreamMessage]]) -> None:
        """Hand each entry to its lane (or start it) without waiting for it."""
        for _, message in todo:
            self._take(message)

    def _take(self, message: StreamMessage) -> None:
        if message.id in self._in_hand:
            return
        self._in_hand[message.id] = time.monotonic()
        try:
            lane = self.lane_of(message)
        except Exception:  # a lane function must not stop the loop: run the entry lane-less
            self._log.warning("broker.consumer.lane_failed", id=message.id, exc_info=True)
            lane = None
        if lane is None:
            self._spawn(self._run_alone(message), f"entry:{message.id}")
            return
        queue = self._queues.get(lane)
        if queue is not None:  # its worker is on it
            queue.append(message)
            return
        self._queues[lane] = queue = collections.deque([message])
        self._spawn(self._work_lane(lane, queue), f"lane:{lane}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_alone(self, message: StreamMessage) -> None:
        try:
            await self._handle_safely(message)
        finally:
            self._release(message)

    async def _handle_safely(self, message: StreamMessage) -> None:
        """Handle and ack; a failed ack leaves the entry pending (reclaimed later), no more."""
        try:
            await self._handle(self.stream, message)
        except Exception as exc:
            self._log.warning("broker.consumer.ack_failed", id=message.id, error=repr(exc))

    async def _work_lane(self, lane: str, queue: collections.deque[StreamMessage]) -> None:
        """Run a lane's entries one by one; stop() leaves the rest unstarted (and pending).

        The lane's queue is in `_queues` exactly while this worker runs.
        """
        try:
            while queue and not self.stopping:
                async with self._slots:
                    if self.stopping:
                        break
                    message = queue.popleft()
                    self._busy += 1
                    try:
                        await self._handle_safely(message)
                    finally:
                        self._busy -= 1
                        self._release(message)
        finally:
            if self._queues.get(lane) is queue:
                del self._queues[lane]

    def _release(self, message: StreamMessage) -> None:
        self._in_hand.pop(message.id, None)
        if len(self._in_hand) < self.max_in_hand:
            self._room.set()
