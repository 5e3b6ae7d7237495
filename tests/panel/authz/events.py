"""Authorization-matrix entries for the SSE event stream (events work)."""

from __future__ import annotations

from tests.panel.authz.rules import Entry

ENTRIES: dict[tuple[str, str], Entry] = {}
