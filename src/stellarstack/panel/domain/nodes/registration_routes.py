"""Node registration: `/api/v1/admin/nodes/token` and `/api/v1/nodes/register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import PlainTextResponse

from stellarstack.panel.db.enums import ActorType, AuditStatus
from stellarstack.panel.deps import DbSession, SettingsDep, client_ip, get_database
from stellarstack.panel.domain.audit.service import Actor, record, record_detached
from stellarstack.panel.domain.nodes.access import NodeCreator
from stellarstack.panel.domain.nodes.pki import NodePki, node_pki
from stellarstack.panel.domain.nodes.registration import create_registration_token, register_node
from stellarstack.panel.domain.nodes.schemas import (
    NodeRegistered,
    NodeRegistration,
    RegistrationTokenCreate,
    RegistrationTokenOut,
)
from stellarstack.panel.domain.nodes.service import rediscover_nodes
from stellarstack.panel.errors import NotFound, PanelError
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["INSTALL_SCRIPT", "router"]

router = APIRouter(prefix="", tags=["nodes"])

PkiDep = Annotated[NodePki, Depends(node_pki)]
INSTALL_SCRIPT = Path(__file__).resolve().parents[5] / "deploy" / "install-daemon.sh"
"""`deploy/install-daemon.sh` of a source checkout (served for the one-line install)."""


@router.post("/admin/nodes/token", status_code=201)
async def create_token(
    request: Request,
    body: RegistrationTokenCreate,
    user: NodeCreator,
    db: DbSession,
    settings: SettingsDep,
) -> Envelope[RegistrationTokenOut]:
    """Create a one-time registration token for a new node (shown once, valid 24 h)."""
    out, row = await create_registration_token(db, body, user, settings)
    actor = Actor(ActorType.USER, str(user.id), user_id=user.id, ip=client_ip(request))
    await record(
        db,
        actor,
        "node.token.create",
        "node_registration_token",
        row.id,
        details={"name": body.name, "region": body.region},
    )
    return ok(out)


@router.post("/nodes/register", status_code=201)
async def register(
    request: Request,
    body: NodeRegistration,
    db: DbSession,
    settings: SettingsDep,
    pki: PkiDep,
    token: Annotated[str | None, Header(alias="X-Registration-Token")] = None,
) -> Envelope[NodeRegistered]:
    """Admit a daemon presenting a registration token: node id, API token, certificate, keys."""
    ip = client_ip(request)
    try:
        registered, node = await register_node(db, token, body, pki, settings)
    except PanelError as exc:
        await db.rollback()  # let go of SQLite's write lock before the audit's own transaction
        await record_detached(
            get_database(request),
            Actor(ActorType.DAEMON, body.hostname, ip=ip),
            "node.register",
            "node",
            status=AuditStatus.FAILURE,
            error=exc.detail,
        )
        raise
    actor = Actor(ActorType.DAEMON, str(node.id), ip=ip)
    await record(
        db,
        actor,
        "node.register",
        "node",
        node.id,
        details={"name": node.name, "hostname": body.hostname, "version": body.version},
    )
    await db.commit()  # the event consumer must find the node when it looks
    rediscover_nodes(request.app.state)
    return ok(registered)


@router.get("/nodes/install-daemon.sh", response_class=PlainTextResponse)
async def install_script() -> PlainTextResponse:
    """The node installer that the "add node" command pipes into `sh`."""
    if not INSTALL_SCRIPT.is_file():
        raise NotFound(
            "This panel was installed without deploy/install-daemon.sh; copy it from the "
            "StellarStack release to the node instead."
        )
    return PlainTextResponse(INSTALL_SCRIPT.read_text(), media_type="text/x-shellscript")
