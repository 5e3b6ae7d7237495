"""Authorization-matrix entries for power actions and reinstall (lifecycle work)."""

from __future__ import annotations

from tests.panel.authz.rules import Entry

ENTRIES: dict[tuple[str, str], Entry] = {}
