"""Splitting raw output into lines: partial chunks, CRLF, bad UTF-8, endless lines."""

from __future__ import annotations

from stellarstack.daemon.runtime.output import LineSplitter


def test_lines_are_completed_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\nwor") == ["hello"]
    assert splitter.feed(b"ld\n\nx") == ["world", ""]
    assert splitter.flush() == ["x"]
    assert splitter.flush() == []


def test_crlf_endings_and_invalid_utf8_are_tolerated() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"dos\r\n\xff\xfebad\n") == ["dos", "\ufffd\ufffdbad"]


def test_output_without_newlines_is_cut_into_bounded_lines() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"a" * 25) == ["a" * 10, "a" * 10]
    assert splitter.flush() == ["a" * 5]
