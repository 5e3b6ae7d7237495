"""Turn raw output chunks into lines, and read a runtime's output a batch of lines at a time.

Both runtimes split bytes with `LineSplitter`. Their output streams also implement
`LineBatches`, so a consumer that wants throughput (the console hub) takes every line that is
ready in one call with `next_lines(stream)` instead of one awaited object per line.
"""

from __future__ import annotations

import abc

from stellarstack.daemon.runtime.base import OutputStream

__all__ = ["MAX_LINE_BYTES", "LineBatches", "LineSplitter", "next_lines"]

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


async def next_lines(stream: OutputStream) -> list[str]:
    """The next batch of line texts from any output stream; [] once it has ended."""
    if isinstance(stream, LineBatches):
        return await stream.next_lines()
    try:
        return [(await stream.__anext__()).text]
    except StopAsyncIteration:
        return []
