"""Fan output out to attached readers in chunks of lines, each reader with its own bounded backlog.

The follower publishes each chunk it read (a list of lines) once; every reader queues the same
list and takes everything queued in one step (`next_lines`), so a flood costs a handful of
wake-ups per chunk, not one per line.
"""

from __future__ import annotations

import asyncio
from collections import deque

from stellarstack.daemon.runtime.base import OutputLine
from stellarstack.daemon.runtime.output import LineBatches

__all__ = ["SUBSCRIBER_BACKLOG", "QueueOutput", "Subscribers"]

SUBSCRIBER_BACKLOG = 10_000
"""Lines queued per reader; one that falls further behind loses its oldest chunks."""


class Subscribers:
    """The readers attached to one server's output."""

    def __init__(self) -> None:
        self._readers: set[QueueOutput] = set()

    def add(self, reader: QueueOutput) -> None:
        """Attach a reader."""
        self._readers.add(reader)

    def discard(self, reader: QueueOutput) -> None:
        """Forget a reader."""
        self._readers.discard(reader)

    def publish(self, texts: list[str]) -> None:
        """Hand a chunk of terminal lines to every reader (readers never change the list)."""
        if texts:
            for reader in self._readers:
                reader.put(texts)

    def end(self) -> None:
        """Tell every reader the output has ended, and forget them."""
        for reader in self._readers:
            reader.finish()
        self._readers.clear()


class QueueOutput(LineBatches):
    """One reader of a server's output: chunks queued up to a backlog of lines."""

    def __init__(self, subscribers: Subscribers, backlog: int = SUBSCRIBER_BACKLOG) -> None:
        self._subscribers = subscribers
        self._backlog = backlog
        self._chunks: deque[list[str]] = deque()
        self._queued = 0
        self._current: list[str] = []
        self._position = 0
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0
        """Lines this reader lost by falling behind."""
        subscribers.add(self)

    def put(self, lines: list[str]) -> None:
        """Queue a chunk; past the backlog, drop the oldest chunks (never the newest)."""
        if self._ended:
            return
        self._chunks.append(lines)
        self._queued += len(lines)
        while self._queued > self._backlog and len(self._chunks) > 1:
            old = self._chunks.popleft()
            self._queued -= len(old)
            self.dropped += len(old)
        self._ready.set()

    def finish(self) -> None:
        """No more output will come; what is queued can still be read."""
        self._ended = True
        self._ready.set()

    async def next_lines(self) -> list[str]:
        """Every line queued now (waiting for at least one); [] once the output has ended."""
        if self._position < len(self._current):
            rest = self._current[self._position :]
            self._current, self._position = [], 0
            return rest
        while not self._chunks:
            if self._ended:
                return []
            self._ready.clear()
            await self._ready.wait()
        if len(self._chunks) == 1:
            lines = self._chunks.popleft()
        else:
            lines = [line for chunk in self._chunks for line in chunk]
            self._chunks.clear()
        self._queued = 0
        return lines

    async def __anext__(self) -> OutputLine:
        if self._position >= len(self._current):
            self._current, self._position = await self.next_lines(), 0
            if not self._current:
                raise StopAsyncIteration
        text = self._current[self._position]
        self._position += 1
        return OutputLine("stdout", text)

    async def aclose(self) -> None:
        """Detach; lines already queued are dropped."""
        self._ended = True
        self._chunks.clear()
        self._current, self._position = [], 0
        self._subscribers.discard(self)
        self._ready.set()
