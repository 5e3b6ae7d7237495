"""Authorization-matrix entries for power actions and reinstall (lifecycle work).

Every allowed caller really queues a command, and one power action at a time is the rule, so
each call first finishes whatever the previous caller left on its way (`_idle_server`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from stellarstack.panel.db.enums import CommandStatus
from stellarstack.panel.db.models import NodeCommand
from tests.panel.admin.world import World
from tests.panel.authz.rules import ADMINS, MODERATORS, Entry, on_server

__all__ = ["ENTRIES"]


async def _idle_server(world: World, actor: str) -> dict[str, Any]:
    """Finish the commands earlier callers queued for the matrix server."""
    async with world.database.sessionmaker() as db:
        await db.execute(
            sa.update(NodeCommand)
            .where(
                NodeCommand.server_id == world.server_id,
                NodeCommand.status.in_((CommandStatus.QUEUED, CommandStatus.DELIVERED)),
            )
            .values(status=CommandStatus.SUCCEEDED, finished_at=datetime.now(UTC))
        )
        await db.commit()
    return {}


P = "/api/v1/servers/{server_id}"
ENTRIES: dict[tuple[str, str], Entry] = {
    ("POST", f"{P}/{action}"): Entry(on_server(202, MODERATORS), prepare=_idle_server)
    for action in ("start", "stop", "restart", "kill")
}
# The matrix server's factory blueprint has no startup command: whoever may reinstall gets past
# the guard and meets the 409 "blueprint cannot be rendered" (nothing is sent or changed).
ENTRIES[("POST", f"{P}/reinstall")] = Entry(on_server(409, ADMINS), prepare=_idle_server)
