"""Turn raw output chunks into lines, and read a runtime's output a batch of lines at a time.

Both runtimes split bytes with `LineSplitter`. Their output streams also implement
`LineBatches`, so a consumer that wants throughput (the console hub) takes every line that is
ready in one call with `next_lines(stream)` instead of one awaited object per line.
"""

from __future__ import annotations

import abc
from collections import deque
from typing import Protocol

from stellarstack.daemon.runtime.base import OutputLine, OutputStream, StreamName

__all__ = [
    "MAX_LINE_BYTES",
    "Frame",
    "FrameSource",
    "LineBatches",
    "LineSplitter",
    "MultiplexedOutput",
    "next_lines",
]

MAX_LINE_BYTES = 64 * 1024
"""Longer output without a newline is cut into lines of this size (bounds memory)."""


class LineSplitter:
    """Split a byte stream into text lines, keeping an unfinished last line for the next chunk."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completed."""
        self._buffer += data
        end = self._buffer.rfind(b"\n")
        lines: list[str] = []
        if end >= 0:
            # One decode and one split for the whole chunk (not per line): floods are cheap.
            text = self._buffer[:end].decode("utf-8", errors="replace")
            lines = [line.removesuffix("\r") for line in text.split("\n")]
            del self._buffer[: end + 1]
        while len(self._buffer) >= self._max_line:
            lines.append(self._decode(self._buffer[: self._max_line]))
            del self._buffer[: self._max_line]
        return lines

    def flush(self) -> list[str]:
        """Return the unfinished last line, if any (at end of stream)."""
        if not self._buffer:
            return []
        line = self._decode(self._buffer)
        self._buffer.clear()
        return [line]

    @staticmethod
    def _decode(raw: bytes | bytearray) -> str:
        text = raw.decode("utf-8", errors="replace")
        return text[:-1] if text.endswith("\r") else text


class LineBatches(OutputStream):
    """An output stream that can also hand over every ready line at once."""

    @abc.abstractmethod
    async def next_lines(self) -> list[str]:
        """The lines ready now (waiting for at least one); [] once the output has ended."""


class Frame(Protocol):
    """One frame of a multiplexed stream: the fd it came from (1 stdout, 2 stderr), its bytes."""

    @property
    def stream(self) -> int: ...

    @property
    def data(self) -> bytes: ...


class FrameSource(Protocol):
    """A multiplexed output connection (Docker's attach stream)."""

    async def read_out(self) -> Frame | None:
        """The next frame; None at the end."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


_STREAMS: dict[int, StreamName] = {1: "stdout", 2: "stderr"}


class MultiplexedOutput(LineBatches):
    """Lines from a multiplexed connection, stdout and stderr split separately."""

    def __init__(self, source: FrameSource) -> None:
        self._source = source
        self._splitters = {1: LineSplitter(), 2: LineSplitter()}
        self._pending: deque[OutputLine] = deque()
        self._done = False

    async def _read(self) -> tuple[StreamName, list[str]]:
        """The lines of the next frame; at the end, each unfinished line; then none."""
        while not self._done:
            frame = await self._source.read_out()
            if frame is None:
                self._done = True
                break
            fd = frame.stream if frame.stream in self._splitters else 1
            if texts := self._splitters[fd].feed(frame.data):
                return _STREAMS[fd], texts
        for fd, splitter in self._splitters.items():
            if texts := splitter.flush():
                return _STREAMS[fd], texts
        return "stdout", []

    async def next_lines(self) -> list[str]:
        """The texts of the next frame's lines (one frame from the engine per call)."""
        if self._pending:
            texts = [line.text for line in self._pending]
            self._pending.clear()
            return texts
        return (await self._read())[1]

    async def __anext__(self) -> OutputLine:
        if not self._pending:
            stream, texts = await self._read()
            if not texts:
                raise StopAsyncIteration
            self._pending.extend(OutputLine(stream, text) for text in texts)
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Close the connection."""
        self._done = True
        await self._source.close()


async def next_lines(stream: OutputStream) -> list[str]:
    """The next batch of line texts from any output stream; [] once it has ended."""
    if isinstance(stream, LineBatches):
        return await stream.next_lines()
    try:
        return [(await stream.__anext__()).text]
    except StopAsyncIteration:
        return []
