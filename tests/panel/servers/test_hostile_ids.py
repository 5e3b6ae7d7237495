"""Server ids from the URL are data: odd bytes are a 404 on every engine, never a 500.

(An over-long id is refused by the path's own validation: 422 naming `server_id`.)"""

from __future__ import annotations

import pytest

from tests.panel.servers.conftest import ServersPanel

HOSTILE_IDS = ["%00", "abc%00def", "%F0%9F%92%A5", "..%2F..%2Fetc", "x" * 65, "' OR 1=1 --"]


@pytest.mark.parametrize("ref", HOSTILE_IDS)
async def test_hostile_server_ids_are_404(panel: ServersPanel, ref: str) -> None:
    player = await panel.user()
    for path in (f"/api/v1/servers/{ref}", f"/api/v1/servers/{ref}/console-token"):
        response = await player.get(path)
        want = 422 if len(ref) > 64 else 404
        assert response.status_code == want, (path, response.text)
