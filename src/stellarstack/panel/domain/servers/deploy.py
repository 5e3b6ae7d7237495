"""Deploying a server (spec §8.1.2 steps 1-3): check, place, reserve, record, send.

Everything that can be refused is checked before a row is written: the owner (admins may
deploy for others), blueprint and version, resources, variables, quotas, node. Then, in one
transaction, the server row, its ports (reserved atomically, see `placement`), its variables
and an install deployment are written and committed, and `server.create` is sent with the
rendered `ServerSpec`. When the command cannot be sent the rows are removed again, so a
refused deployment leaves no server and no reserved port behind.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.blueprints import BlueprintError
from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.broker import Broker
from stellarstack.logs import get_logger
from stellarstack.panel.auth.permissions import platform_permissions
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import AuditStatus, DeploymentKind, DeploymentStatus, ServerStatus
from stellarstack.panel.db.models import (
    Allocation,
    Blueprint,
    BlueprintVersion,
    Deployment,
    Server,
    ServerVariable,
    User,
)
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.blueprints.service import find_blueprint, spec_of
from stellarstack.panel.domain.commands.service import send_command
from stellarstack.panel.domain.servers import placement
from stellarstack.panel.domain.servers.quotas import check_quotas, lock_owner
from stellarstack.panel.domain.servers.schemas import ServerCreate
from stellarstack.panel.domain.servers.spec import build_spec
from stellarstack.panel.domain.servers.variables import check_values
from stellarstack.panel.errors import FieldError, Forbidden, PanelError, ValidationFailed
from stellarstack.protocol.commands import CommandType
from stellarstack.settings import PanelSettings

__all__ = ["can_manage_any_server", "create_server", "resolve_blueprint", "resolve_version"]

log = get_logger(__name__)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed([FieldError(field, message)], detail=message)


def can_manage_any_server(principal: Principal) -> bool:
    """Whether the caller may act on any user's servers (admins, through a session)."""
    return principal.api_key is None and "user.servers" in platform_permissions(principal.user.role)


async def _owner(db: AsyncSession, principal: Principal, owner_id: uuid.UUID | None) -> User:
    if owner_id is None or owner_id == principal.user.id:
        return principal.user
    if not can_manage_any_server(principal):
        raise Forbidden("Only administrators may deploy servers for other users.")
    owner = await db.get(User, owner_id)
    if owner is None:
        raise _invalid("ownerId", "There is no user with this id.")
    if owner.suspended:
        raise _invalid("ownerId", "This user is suspended; unsuspend them first.")
    return owner


async def resolve_blueprint(
    db: AsyncSession, ref: str, *, deploying: bool = True
) -> tuple[Blueprint, BlueprintSpec]:
    """An enabled blueprint by slug or id and its parsed definition; 422 at `blueprint`."""
    row = await find_blueprint(db, ref)
    if row is None or (deploying and not row.enabled):
        raise _invalid("blueprint", f"There is no blueprint {ref[:128]!r}.")
    try:
        spec = spec_of(row)
    except BlueprintError as exc:
        raise _invalid("blueprint", f"This blueprint cannot be deployed: {exc}") from exc
    return row, spec


def resolve_version(row: Blueprint, tag: str | None) -> BlueprintVersion | None:
    """The version of this tag (422 at `version` when unknown), else the recommended one."""
    if tag is not None:
        found = next((v for v in row.versions if v.tag == tag), None)
        if found is None:
            known = ", ".join(v.tag for v in row.versions[:20]) or "none"
            raise _invalid("version", f"{row.name} has no version {tag[:64]!r} (known: {known}).")
        return found
    return next((v for v in row.versions if v.recommended), None) or (
        row.versions[0] if row.versions else None
    )


async def _insert(
    db: AsyncSession,
    server: Server,
    demand: placement.Demand,
    requested: list[uuid.UUID] | None,
    values: dict[str, str],
    *,
    requested_by: uuid.UUID,
) -> Deployment:
    """Write the server, reserve its ports, add its variables and install deployment."""
    db.add(server)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise _invalid("externalId", "Another server already has this external id.") from None
    await placement.reserve_allocations(db, server.node, server.id, demand, requested)
    db.add_all(ServerVariable(server_id=server.id, key=k, value=v) for k, v in values.items())
    deployment = Deployment(
        server_id=server.id,
        kind=DeploymentKind.INSTALL,
        status=DeploymentStatus.PENDING,
        to_version_tag=server.version_tag,
        requested_by_id=requested_by,
    )
    db.add(deployment)
    await db.flush()
    return deployment


async def _undo(db: AsyncSession, actor: Actor, server_id: uuid.UUID, why: str) -> None:
    await db.rollback()
    await placement.release_allocations(db, server_id)
    await db.execute(sa.delete(Server).where(Server.id == server_id))
    await record(
        db, actor, "server.create", "server", server_id, status=AuditStatus.FAILURE, error=why
    )
    await db.commit()


async def _send_create(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    server: Server,
    spec: BlueprintSpec,
    values: dict[str, str],
    deployment: Deployment,
    body: ServerCreate,
) -> None:
    """Render the ServerSpec from the committed rows and queue `server.create`."""
    allocations = list(
        (await db.execute(sa.select(Allocation).where(Allocation.server_id == server.id))).scalars()
    )
    payload = build_spec(
        server,
        spec,
        values,
        allocations,
        deployment_id=str(deployment.id),
        start_on_completion=body.start_on_completion,
    )
    await send_command(
        db,
        broker,
        server.node,
        CommandType.SERVER_CREATE,
        payload=payload.to_wire(),
        ttl=settings.server_command_ttl,
        max_payload_bytes=max(settings.command_max_payload_bytes, 512 * 1024),
    )


async def create_server(
    db: AsyncSession,
    broker: Broker,
    settings: PanelSettings,
    principal: Principal,
    body: ServerCreate,
    *,
    ip: str | None,
) -> tuple[Server, Deployment]:
    """Deploy a blueprint: write the server, reserve its ports, send `server.create`.

    Raises ValidationFailed (field errors), Forbidden (quota, owner), Conflict (no room, port
    taken), DependencyUnavailable (broker down; nothing is left behind).
    """
    owner = await _owner(db, principal, body.owner_id)
    row, spec = await resolve_blueprint(db, body.blueprint)
    version = resolve_version(row, body.version)
    tag = version.tag if version else None
    memory = body.memory_mb or row.default_memory_mb
    cpu = body.cpu or row.default_cpu
    disk = body.disk_mb or row.default_disk_mb
    values = check_values(spec, body.variables, version=tag)
    await lock_owner(db, owner.id)
    await check_quotas(db, owner, memory_mb=memory, cpu=cpu, disk_mb=disk)
    demand = placement.Demand(memory, disk, cpu, tuple(p.protocol for p in spec.ports))
    node = await placement.choose_node(
        db,
        demand,
        node_id=body.node_id,
        region=body.region,
        allow_private=can_manage_any_server(principal),
    )
    server = Server(
        name=body.name,
        description=body.description,
        owner_id=owner.id,
        node=node,
        blueprint_id=row.id,
        blueprint_version_id=version.id if version else None,
        version_tag=tag,
        docker_image=version.docker_image if version else None,
        memory_mb=memory,
        swap_mb=spec.resources.swap_mb,
        disk_mb=disk,
        cpu_limit=cpu,
        pids_limit=spec.resources.pids,
        backup_limit=None,
        allocation_limit=None,
        status=ServerStatus.INSTALLING,
        external_id=body.external_id,
    )
    deployment = await _insert(
        db, server, demand, body.allocation_ids, values, requested_by=principal.user.id
    )
    await record(
        db,
        principal.actor,
        "server.create",
        "server",
        server.id,
        details={
            "name": server.name,
            "blueprint": row.slug,
            "node": node.name,
            "owner": str(owner.id),
        },
    )
    await db.commit()
    server_id, node_id, actor = server.id, node.id, principal.actor
    try:
        await _send_create(db, broker, settings, server, spec, values, deployment, body)
    except (PanelError, BlueprintError) as exc:
        why = exc.detail if isinstance(exc, PanelError) else str(exc)
        await _undo(db, actor, server_id, f"server.create not sent: {why}")
        log.warning("servers.create_not_sent", server_id=str(server_id), node_id=str(node_id))
        if isinstance(exc, BlueprintError):
            raise _invalid("blueprint", f"This blueprint cannot be deployed: {exc}") from exc
        raise
    log.info("servers.created", server_id=str(server.id), node_id=str(node.id), ip=ip)
    return server, deployment
