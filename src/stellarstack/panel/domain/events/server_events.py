"""Server events applied to rows: status, deployment progress, install outcomes, alerts.

Every change is scoped to the reporting node: a server, deployment or command that is not on
that node is left alone (a node's credentials let it write only its own stream, and must not
let it touch another node's servers).

- `server.status` → `Server.status` (+ crash count and time, install error, installed time).
  Each status carries the daemon's time; one older than the last applied changes nothing, so
  a replayed or reclaimed event never rolls a server back. SUSPENDED is the panel's own and
  stays until an administrator lifts it; REINSTALLING stays while the daemon says installing,
  and through the stop that opens a reinstall (`stopping`/`stopped` while the reinstall's
  deployment is still pending: the daemon has not begun it yet).
- `deployment.progress` → the deployment's step, percentage and status (running; succeeded at
  100 %; failed when the stage is `failed`). A finished deployment does not move again.
- `command.result` of `server.create`/`server.reinstall` → the deployment succeeds or fails,
  and a failure leaves the server INSTALL_FAILED with the error for its owner to read.
- `node.alert` naming a server → audit entry `server.alert` (actor: the node).
- `console.session_start|session_end|command_sent|power` (the daemon's console) → audit
  entries of the same name, attributed to the console token's user.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import datetime

import sqlalchemy as sa
from pydantic import Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import ActorType, AuditStatus, DeploymentStatus
from stellarstack.panel.db.enums import ServerStatus as Stored
from stellarstack.panel.db.models import Deployment, NodeCommand, Server, User
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.protocol.commands import CommandStatus as Outcome
from stellarstack.protocol.commands import CommandType
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.events import (
    CommandResult,
    DeploymentProgress,
    Event,
    NodeAlert,
    ServerStatus,
    ServerStatusChange,
)
from stellarstack.protocol.wire import WireModel

__all__ = [
    "CONSOLE_ACTIONS",
    "FAILED_STAGES",
    "INSTALL_COMMANDS",
    "SERVER_STATUS",
    "ConsoleAudit",
    "apply_alert",
    "apply_console_audit",
    "apply_deployment_progress",
    "apply_install_result",
    "apply_server_status",
    "server_on_node",
]

log = get_logger(__name__)

SERVER_STATUS = {
    ServerStatus.INSTALLING: Stored.INSTALLING,
    ServerStatus.INSTALL_FAILED: Stored.INSTALL_FAILED,
    ServerStatus.STARTING: Stored.STARTING,
    ServerStatus.RUNNING: Stored.RUNNING,
    ServerStatus.STOPPING: Stored.STOPPING,
    ServerStatus.STOPPED: Stored.OFFLINE,
    ServerStatus.CRASHED: Stored.CRASHED,
}
"""Reported status → stored status."""

INSTALL_COMMANDS = frozenset({CommandType.SERVER_CREATE.value, CommandType.SERVER_REINSTALL.value})
"""Commands whose outcome is the outcome of a deployment."""

FAILED_STAGES = frozenset({"failed", "error"})
"""`deployment.progress` stages that end a deployment as failed (the message says why)."""

_INSTALLING = frozenset({Stored.INSTALLING, Stored.REINSTALLING})
_HALT = frozenset({ServerStatus.STOPPING, ServerStatus.STOPPED})
_INSTALLED = frozenset({ServerStatus.STARTING, ServerStatus.RUNNING, ServerStatus.STOPPED})
_OPEN = (DeploymentStatus.PENDING, DeploymentStatus.RUNNING)
CONSOLE_ACTIONS = frozenset({"session_start", "session_end", "command_sent", "power"})
"""`console.<action>` events the daemon's console publishes for the audit log."""

MAX_ERROR = 8000
STATUS_ATTEMPTS = 5
"""Reads of a server whose row another replica keeps changing before the event gives up.

Giving up raises: the entry stays pending and is retried, never dropped."""
MAX_COMMAND = 4096
MAX_USER_AGENT = 256


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def server_on_node(db: AsyncSession, node_id: uuid.UUID, server_ref: str) -> Server | None:
    """The server `server_ref` names if it lives on `node_id` (fresh from the database)."""
    server_id = _uuid(server_ref)
    if server_id is None:
        log.warning("events.unknown_server", node_id=str(node_id), server_id=server_ref[:64])
        return None
    server = await db.scalar(
        sa.select(Server)
        .where(Server.id == server_id, Server.node_id == node_id)
        .execution_options(populate_existing=True)
    )
    if server is None:
        log.warning("events.foreign_server", node_id=str(node_id), server_id=server_ref[:64])
    return server


async def _install_not_begun(db: AsyncSession, server: Server) -> bool:
    """Whether the server is (re)installing and its deployment has had no progress yet.

    A reinstall stops a running server first; that stop is reported before the deployment's
    first step, so it must not turn REINSTALLING into OFFLINE.
    """
    if server.status not in _INSTALLING:
        return False
    pending = await db.scalar(
        sa.select(Deployment.id)
        .where(Deployment.server_id == server.id, Deployment.status == DeploymentStatus.PENDING)
        .limit(1)
    )
    return pending is not None


def _status_values(
    server: Server, change: ServerStatusChange, at: datetime, *, install_not_begun: bool = False
) -> dict[str, object]:
    """The columns one status change sets on `server` as it is now."""
    stored = SERVER_STATUS[change.status]
    values: dict[str, object] = {"status_changed_at": at}
    if server.status == Stored.SUSPENDED:
        pass  # the panel's own status: only an unsuspend lifts it
    elif install_not_begun and change.status in _HALT:
        return values  # the stop that opens a reinstall: still (re)installing
    elif server.status == Stored.REINSTALLING and stored == Stored.INSTALLING:
        pass  # the more precise word for the same thing
    else:
        values["status"] = stored
    if change.status is ServerStatus.CRASHED:
        values["crash_count"] = (
            change.crash_count if change.crash_count is not None else server.crash_count + 1
        )
        values["last_crash_at"] = at
    elif change.status is ServerStatus.INSTALL_FAILED:
        values["install_error"] = (change.reason or "The install failed.")[:MAX_ERROR]
    elif change.status in _INSTALLED and (
        server.status in _INSTALLING
        or (server.installed_at is None and server.status != Stored.INSTALL_FAILED)
    ):
        values["installed_at"] = at
        values["install_error"] = None
    return values


async def apply_server_status(
    db: AsyncSession,
    node_id: uuid.UUID,
    server_ref: str,
    change: ServerStatusChange,
    *,
    at: datetime,
) -> bool:
    """Apply a status the daemon reported at `at`; False when stale or foreign.

    The update is conditional on the row still being as read (status and time), so two
    replicas applying two events of one server cannot interleave; the one that finds the row
    changed reads it again and decides afresh (it may now be the stale one).
    """
    for _ in range(STATUS_ATTEMPTS):
        server = await server_on_node(db, node_id, server_ref)
        if server is None:
            return False
        seen = server.status_changed_at
        if seen is not None and at < seen:
            log.info(
                "events.stale_status",
                server_id=str(server.id),
                status=change.status.value,
                at=at.isoformat(),
                last=seen.isoformat(),
            )
            return False
        halting = change.status in _HALT and await _install_not_begun(db, server)
        values = _status_values(server, change, at, install_not_begun=halting)
        unchanged_time = (
            Server.status_changed_at.is_(None) if seen is None else Server.status_changed_at == seen
        )
        updated = await db.execute(
            sa.update(Server)
            .where(Server.id == server.id, Server.status == server.status, unchanged_time)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if updated.rowcount:  # type: ignore[attr-defined]
            if change.status is ServerStatus.INSTALL_FAILED:
                await _fail_open_deployments(db, server.id, str(values["install_error"]), at)
            return True
        log.info("events.status_race", server_id=str(server.id), status=change.status.value)
    raise RuntimeError(f"server {server_ref} changed under {STATUS_ATTEMPTS} attempts")


async def _fail_open_deployments(
    db: AsyncSession, server_id: uuid.UUID, error: str, at: datetime
) -> None:
    await db.execute(
        sa.update(Deployment)
        .where(Deployment.server_id == server_id, Deployment.status.in_(_OPEN))
        .values(status=DeploymentStatus.FAILED, error=error[:MAX_ERROR], finished_at=at)
        .execution_options(synchronize_session=False)
    )


def _on_node(node_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """Deployments of servers on `node_id`."""
    return Deployment.server_id.in_(sa.select(Server.id).where(Server.node_id == node_id))


async def apply_deployment_progress(
    db: AsyncSession,
    node_id: uuid.UUID,
    progress: DeploymentProgress,
    *,
    at: datetime,
) -> bool:
    """Record a deployment step; False for an unknown, foreign or finished deployment."""
    deployment_id = _uuid(progress.deployment_id)
    if deployment_id is None:
        return False
    stage = progress.stage.strip().lower()
    values: dict[str, object] = {
        "step": progress.stage,
        "progress": min(100, max(0, round(progress.progress * 100))),
        "status": DeploymentStatus.RUNNING,
        "started_at": sa.func.coalesce(Deployment.started_at, at),
    }
    if stage in FAILED_STAGES:
        values["status"] = DeploymentStatus.FAILED
        values["error"] = (progress.message or "The deployment failed.")[:MAX_ERROR]
        values["finished_at"] = at
        del values["progress"]  # how far it got stays visible
    elif progress.progress >= 1:
        values["status"] = DeploymentStatus.SUCCEEDED
        values["finished_at"] = at
    updated = await db.execute(
        sa.update(Deployment)
        .where(Deployment.id == deployment_id, Deployment.status.in_(_OPEN), _on_node(node_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(updated.rowcount)  # type: ignore[attr-defined]


async def apply_install_result(
    db: AsyncSession, node_id: uuid.UUID, result: CommandResult, *, at: datetime
) -> bool:
    """Finish the deployment a `server.create`/`server.reinstall` result belongs to.

    A failure also marks the server INSTALL_FAILED (unless a status event already did) with
    the daemon's error. The command must be this node's.
    """
    if result.command_type not in INSTALL_COMMANDS:
        return False
    command_id = _uuid(result.command_id)
    command = None
    if command_id is not None:
        command = await db.scalar(
            sa.select(NodeCommand).where(
                NodeCommand.id == command_id, NodeCommand.node_id == node_id
            )
        )
    if command is None or command.server_id is None:
        return False
    deployment_id = _uuid(str(command.payload.get("deploymentId") or ""))
    succeeded = result.status is Outcome.COMPLETED
    error = None if succeeded else (result.error or f"{command.type} {result.status.value}")
    if deployment_id is not None:
        values: dict[str, object] = {"finished_at": at}
        if succeeded:
            values |= {"status": DeploymentStatus.SUCCEEDED, "progress": 100}
        else:
            values |= {"status": DeploymentStatus.FAILED, "error": (error or "")[:MAX_ERROR]}
        await db.execute(
            sa.update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.server_id == command.server_id,
                Deployment.status.in_(_OPEN),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    if not succeeded:
        await db.execute(
            sa.update(Server)
            .where(Server.id == command.server_id, Server.status.in_(_INSTALLING))
            .values(status=Stored.INSTALL_FAILED, install_error=(error or "")[:MAX_ERROR])
            .execution_options(synchronize_session=False)
        )
    return True


async def apply_alert(
    db: AsyncSession, node_id: uuid.UUID, server_ref: str | None, alert: NodeAlert
) -> bool:
    """Record a node alert in the audit log: `server.alert` for a server, else `node.alert`."""
    actor = Actor(ActorType.DAEMON, str(node_id))
    status = AuditStatus.SUCCESS if alert.severity == "info" else AuditStatus.FAILURE
    details = {"severity": alert.severity, "message": alert.message}
    if server_ref is None:
        await record(db, actor, "node.alert", "node", node_id, status=status, details=details)
        return True
    server = await server_on_node(db, node_id, server_ref)
    if server is None:
        return False
    await record(
        db,
        actor,
        "server.alert",
        "server",
        server.id,
        status=status,
        error=alert.message if status is AuditStatus.FAILURE else None,
        details={**details, "nodeId": str(node_id)},
    )
    log.info("servers.alert", server_id=str(server.id), severity=alert.severity)
    return True


class ConsoleAudit(WireModel):
    """`console.*` event data: who, from where, and what (daemon/console_ws.py `_who`)."""

    user_id: str = Field(max_length=64)
    username: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    token_id: str | None = None
    command: str | None = None
    duration: float | None = Field(default=None, ge=0)
    action: str | None = None


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


async def apply_console_audit(db: AsyncSession, node_id: uuid.UUID, event: Event) -> bool:
    """Record a console session start/end, a command sent or a power action from the console.

    The entry is the user's (the token's subject, if that user still exists); the reporting
    node is kept in the details.
    """
    kind = event.type.removeprefix("console.")
    if kind not in CONSOLE_ACTIONS or event.server_id is None:
        log.warning("events.unknown_console_event", node_id=str(node_id), type=event.type)
        return False
    try:
        data = ConsoleAudit.model_validate(event.data)
    except ValidationError as exc:
        raise MalformedMessageError(f"malformed {event.type}: {exc.errors()[:3]}") from exc
    server = await server_on_node(db, node_id, event.server_id)
    if server is None:
        return False
    user_id = _uuid(data.user_id)
    if user_id is not None and await db.get(User, user_id) is None:
        user_id = None  # deleted meanwhile: keep the id as text, not the foreign key
    details: dict[str, object] = {
        "nodeId": str(node_id),
        "username": (data.username or "")[:255] or None,
        "userAgent": (data.user_agent or "")[:MAX_USER_AGENT],
        "tokenId": (data.token_id or "")[:128] or None,
    }
    if kind == "command_sent":
        details["command"] = (data.command or "")[:MAX_COMMAND]
    elif kind == "session_end":
        details["duration"] = data.duration
    elif kind == "power":
        details["action"] = (data.action or "")[:16]
    actor = Actor(ActorType.USER, data.user_id, user_id=user_id, ip=_ip(data.ip))
    await record(db, actor, event.type, "server", server.id, details=details)
    return True
