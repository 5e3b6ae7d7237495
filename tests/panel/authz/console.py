"""Authorization-matrix entries for console tokens (console work)."""

from __future__ import annotations

from tests.panel.authz.rules import Entry

ENTRIES: dict[tuple[str, str], Entry] = {}
