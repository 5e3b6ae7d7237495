"""Turn raw output chunks into lines, shared by the Docker and process runtimes."""

from __future__ import annotations

__all__ = ["MAX_LINE_BYTES", "LineSplitter"]

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
        lines: list[str] = []
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end < 0:
                break
            lines.append(self._decode(self._buffer[start:end]))
            start = end + 1
        del self._buffer[:start]
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
