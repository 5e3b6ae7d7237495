"""Authorization-matrix entries for server CRUD, deployments, suspend (servers work)."""

from __future__ import annotations

from tests.panel.authz.rules import Entry

ENTRIES: dict[tuple[str, str], Entry] = {}
