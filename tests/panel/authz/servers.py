"""Authorization-matrix entries for server CRUD, deployments, suspend (servers work).

Deleting and suspending need a server of their own per caller: `_fresh_server` makes one on a
fresh OFFLINE node (so no command is waited for), shared with both subusers like the world's.
"""

from __future__ import annotations

import uuid
from typing import Any

from stellarstack.panel.auth.permissions import SERVER_PERMISSIONS
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Server, Subuser
from tests.panel.admin.world import UNRELATED_SERVER_PERMISSION, World
from tests.panel.authz.rules import ADMINS, STAFF, Entry, Rule, on_server, signed_in
from tests.panel.db.factories import make_blueprint, make_node, make_server

S = "/api/v1/servers/{server_id}"


async def _fresh_server(world: World, actor: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    async with world.database.sessionmaker() as db:
        node = make_node(f"authz-{tag}")
        node.status = NodeStatus.OFFLINE
        blueprint = make_blueprint(f"authz-{tag}")
        server: Server = make_server(world.users["owner"], node, blueprint, f"matrix {tag}")
        db.add_all([node, blueprint, server])
        await db.flush()
        db.add(
            Subuser(
                user_id=world.users["subuser_without"].id,
                server_id=server.id,
                permissions=[UNRELATED_SERVER_PERMISSION],
            )
        )
        db.add(
            Subuser(
                user_id=world.users["subuser_with"].id,
                server_id=server.id,
                permissions=sorted(SERVER_PERMISSIONS),
            )
        )
        await db.commit()
        return {"server_id": server.id}


# Suspension is for administrators (through a session); other callers who can see the server
# get 403, those who cannot 404.
ADMIN_ON_SERVER = Rule(200, frozenset(ADMINS), special={"other_user": 404})

ENTRIES: dict[tuple[str, str], Entry] = {
    # anyone signed in may deploy for themselves; an empty body is a 422 past the guard
    ("POST", "/api/v1/servers"): Entry(signed_in(422), body=lambda w, a: {}),
    ("GET", "/api/v1/servers"): Entry(signed_in(200)),
    ("GET", S): Entry(on_server(200, STAFF)),
    ("GET", S + "/deployments"): Entry(on_server(200, STAFF)),
    # renaming needs server.settings (admins among staff)
    ("PATCH", S): Entry(on_server(200, ADMINS), body=lambda w, a: {"name": "Matrix"}),
    # the fresh server's node is offline: whoever may delete meets a 409 (no ?force)
    ("DELETE", S): Entry(on_server(409, ADMINS), prepare=_fresh_server),
    ("POST", S + "/suspend"): Entry(
        ADMIN_ON_SERVER, prepare=_fresh_server, body=lambda w, a: {"reason": "matrix"}
    ),
    ("POST", S + "/unsuspend"): Entry(ADMIN_ON_SERVER, prepare=_fresh_server),
}
