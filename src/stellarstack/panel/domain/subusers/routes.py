"""`/api/v1/servers/{server_id}/subusers`: per-server access for other users (spec §14.3)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from stellarstack.panel.auth.mailer import MailerDep
from stellarstack.panel.auth.permissions import ServerAccess, require_server_permission
from stellarstack.panel.deps import BrokerDep, DbSession, SettingsDep
from stellarstack.panel.domain.events.visibility import notify_access_changed
from stellarstack.panel.domain.subusers import service
from stellarstack.panel.domain.subusers.schemas import SubuserCreate, SubuserOut, SubuserUpdate
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["router"]

router = APIRouter(prefix="/servers/{server_id}/subusers", tags=["subusers"])

Reader = Annotated[ServerAccess, Depends(require_server_permission("server.subusers.read"))]
Granter = Annotated[ServerAccess, Depends(require_server_permission("server.subusers.create"))]
Editor = Annotated[ServerAccess, Depends(require_server_permission("server.subusers.update"))]
Remover = Annotated[ServerAccess, Depends(require_server_permission("server.subusers.delete"))]


@router.get("", response_model=Envelope[list[SubuserOut]])
async def list_subusers(access: Reader, db: DbSession) -> Envelope[list[SubuserOut]]:
    """List the server's subusers and pending invitations."""
    return ok(await service.list_subusers(db, access))


@router.post("", status_code=201, response_model=Envelope[SubuserOut])
async def add_subuser(
    body: SubuserCreate,
    access: Granter,
    db: DbSession,
    mailer: MailerDep,
    settings: SettingsDep,
) -> Envelope[SubuserOut]:
    """Share the server with someone by email (an unknown address gets an invitation)."""
    entry, token = await service.add_subuser(db, access, body.email, body.permissions)
    if token is not None:
        await db.commit()  # the link must work by the time the email arrives
        url = settings.effective_public_url
        mailer.send_later(service.invitation_mail(url, entry.email, token, access.server.name))
    return ok(entry)


@router.get("/{subuser_id}", response_model=Envelope[SubuserOut])
async def get_subuser(subuser_id: uuid.UUID, access: Reader, db: DbSession) -> Envelope[SubuserOut]:
    """One subuser or invitation."""
    return ok(await service.get_subuser(db, access, subuser_id))


@router.patch("/{subuser_id}", response_model=Envelope[SubuserOut])
async def update_subuser(
    subuser_id: uuid.UUID, body: SubuserUpdate, access: Editor, db: DbSession, broker: BrokerDep
) -> Envelope[SubuserOut]:
    """Replace a subuser's permissions (only ones you hold)."""
    updated = await service.update_subuser(db, access, subuser_id, body.permissions)
    await db.commit()  # live event streams re-check access now, against the new permissions
    await notify_access_changed(broker, updated.user_id)
    return ok(updated)


@router.delete("/{subuser_id}", status_code=204)
async def remove_subuser(
    subuser_id: uuid.UUID, access: Remover, db: DbSession, broker: BrokerDep
) -> Response:
    """Revoke a subuser's access, or cancel an invitation."""
    await service.remove_subuser(db, access, subuser_id)
    await db.commit()  # the removed user's live event streams stop at once
    await notify_access_changed(broker)
    return Response(status_code=204)
