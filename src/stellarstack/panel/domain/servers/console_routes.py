"""Console API: `GET /api/v1/servers/{id}/console-token` (spec §6.1).

Thin: the guard checks access (404) and `server.console` (403); a per-user-and-server limit
bounds token minting; `console_tokens` checks the node and signs.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from stellarstack.panel.auth.permissions import ServerAccess, require_server_permission
from stellarstack.panel.auth.ratelimit import RateLimiter
from stellarstack.panel.db.models import Node
from stellarstack.panel.deps import DbSession, client_ip
from stellarstack.panel.domain.nodes.pki import node_pki
from stellarstack.panel.domain.servers.console_tokens import (
    MINT_RATE,
    ConsoleGrant,
    issue_console_token,
)
from stellarstack.panel.errors import NotFound
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(tags=["servers"])

MINT_POLICY = "console_token.user_server"

SERVER_REF = re.compile(r"^[A-Za-z0-9-]{1,64}$")
"""A server UUID or short identifier; anything else cannot name a server."""

ConsoleAccess = Annotated[ServerAccess, Depends(require_server_permission("server.console"))]


def token_limiter(request: Request) -> RateLimiter:
    """A limiter with the console-token policy (Redis-backed when the panel has Redis)."""
    limiter = getattr(request.app.state, "console_token_limiter", None)
    if limiter is None:
        settings = request.app.state.settings
        policies = {MINT_POLICY: MINT_RATE, **settings.rate_limits}
        limiter = RateLimiter.from_settings(settings.model_copy(update={"rate_limits": policies}))
        request.app.state.console_token_limiter = limiter
    assert isinstance(limiter, RateLimiter)
    return limiter


async def plausible_server_ref(server_id: Annotated[str, Path(max_length=64)]) -> None:
    """404 before any lookup for ids no server can have (NUL bytes break PostgreSQL text)."""
    if not SERVER_REF.match(server_id):
        raise NotFound("There is no server with this id.")


@router.get(
    "/servers/{server_id}/console-token",
    response_model=Envelope[ConsoleGrant],
    dependencies=[Depends(plausible_server_ref)],
)
async def console_token(
    request: Request, access: ConsoleAccess, db: DbSession
) -> Envelope[ConsoleGrant]:
    """A five-minute token and the node's WebSocket URL for this server's console."""
    key = f"{access.principal.user.id}:{access.server.id}"
    await token_limiter(request).hit(MINT_POLICY, key)
    node = await db.get(Node, access.server.node_id)
    if node is None:  # pragma: no cover - the foreign key keeps the node while servers use it
        raise NotFound("This server's node no longer exists.")
    pki = await node_pki(request)
    return ok(issue_console_token(access, node, pki.signing_key, ip=client_ip(request)))
