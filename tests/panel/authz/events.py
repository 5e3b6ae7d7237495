"""Authorization-matrix entries for the SSE event stream (events work).

The stream never ends on its own, so the matrix sends a malformed `Last-Event-ID`: a caller
who gets past the guard meets the 400 that value earns (access is checked first).
"""

from __future__ import annotations

from tests.panel.authz.rules import Entry, signed_in

ENTRIES: dict[tuple[str, str], Entry] = {
    ("GET", "/api/v1/events/stream"): Entry(
        signed_in(400), headers=lambda w, a: {"Last-Event-ID": "not-an-event-id"}
    ),
}
