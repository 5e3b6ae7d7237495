"""Authorization-matrix entries for console tokens (console work)."""

from __future__ import annotations

from tests.panel.authz.rules import STAFF, Entry, on_server

ENTRIES: dict[tuple[str, str], Entry] = {
    # Every staff role may watch consoles (`server.console` is in their read set). The
    # "without" subuser and key hold exactly `server.console` (the world's unrelated
    # permission), which is the one this route needs, so they are allowed too.
    ("GET", "/api/v1/servers/{server_id}/console-token"): Entry(
        on_server(200, STAFF, unrelated_ok=True)
    ),
}
