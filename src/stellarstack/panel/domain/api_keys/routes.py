"""`/api/v1/users/me/api-keys`: the user's API keys (a browser session is needed to manage them)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stellarstack.panel.deps import DbSession, SessionPrincipal
from stellarstack.panel.domain.api_keys import service
from stellarstack.panel.domain.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/users/me/api-keys", tags=["api-keys"])


@router.get("", response_model=Envelope[list[ApiKeyOut]])
async def list_api_keys(principal: SessionPrincipal, db: DbSession) -> Envelope[list[ApiKeyOut]]:
    """List your live API keys."""
    keys = await service.list_keys(db, principal.user)
    return ok([ApiKeyOut.model_validate(key) for key in keys])


@router.post("", status_code=201, response_model=Envelope[ApiKeyCreated])
async def create_api_key(
    body: ApiKeyCreate, principal: SessionPrincipal, db: DbSession
) -> Envelope[ApiKeyCreated]:
    """Create an API key; the token is in this response only."""
    new = service.NewKey(
        body.name, body.kind, body.permissions, body.expires_at, tuple(body.allowed_ips)
    )
    key, token = await service.create_key(db, principal.user, new, actor=principal.actor)
    created = ApiKeyOut.model_validate(key).model_dump()
    return ok(ApiKeyCreated(**created, token=token))


@router.delete("/{key_id}", status_code=204)
async def delete_api_key(key_id: uuid.UUID, principal: SessionPrincipal, db: DbSession) -> Response:
    """Revoke an API key."""
    await service.revoke_key(db, principal.user, key_id, actor=principal.actor)
    return Response(status_code=204)
