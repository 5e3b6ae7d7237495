"""Fan output lines out to attached readers, each with its own bounded queue."""

from __future__ import annotations

import asyncio

from stellarstack.daemon.runtime.base import OutputLine, OutputStream

__all__ = ["SUBSCRIBER_BACKLOG", "QueueOutput", "Subscribers"]

SUBSCRIBER_BACKLOG = 10_000
"""Lines queued per reader; one that falls further behind loses its oldest lines."""

_Item = OutputLine | None


class Subscribers:
    """The readers attached to one server's output."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[_Item]] = set()

    def add(self) -> asyncio.Queue[_Item]:
        """A new reader's queue."""
        queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self._queues.add(queue)
        return queue

    def discard(self, queue: asyncio.Queue[_Item]) -> None:
        """Forget a reader."""
        self._queues.discard(queue)

    def publish(self, texts: list[str]) -> None:
        """Hand terminal lines to every reader."""
        for text in texts:
            self._put(OutputLine("stdout", text))

    def end(self) -> None:
        """Tell every reader the output has ended, and forget them."""
        self._put(None)
        self._queues.clear()

    def _put(self, item: _Item) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(item)


class QueueOutput(OutputStream):
    """One reader of a server's output."""

    def __init__(self, subscribers: Subscribers) -> None:
        self._subscribers = subscribers
        self._queue = subscribers.add()
        self._closed = False

    async def __anext__(self) -> OutputLine:
        if self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Detach; lines already queued are dropped."""
        self._closed = True
        self._subscribers.discard(self._queue)
