"""Admitting nodes: one-time registration tokens, the registration itself, the embedded node.

A registration token is stored hashed and is claimed by one conditional UPDATE (unused and
unexpired), so of two simultaneous registrations with one token exactly one wins; the claim
is part of the registration's transaction, so a registration that fails leaves the token
usable. The node gets an API token (stored hashed), a certificate for its own key, the
panel's CA and Ed25519 public key, and — with Redis — an ACL user of its own.
"""

from __future__ import annotations

import json
import shlex
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack import __version__
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus, Protocol
from stellarstack.panel.db.models import Node, NodeRegistrationToken, User
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.allocations import add_allocations
from stellarstack.panel.domain.nodes.ca import InvalidPublicKey, write_private
from stellarstack.panel.domain.nodes.pki import NodePki, node_redis_url
from stellarstack.panel.domain.nodes.schemas import (
    AllocationCreate,
    NodeRegistered,
    NodeRegistration,
    NodeSpecs,
    RegistrationTokenCreate,
    RegistrationTokenOut,
)
from stellarstack.panel.domain.nodes.tokens import (
    REGISTRATION_TOKEN_PREFIX,
    new_node_token,
    new_registration_token,
    token_hash,
)
from stellarstack.panel.domain.nodes.versions import check_compatibility
from stellarstack.panel.errors import Conflict, FieldError, Unauthorized, ValidationFailed
from stellarstack.settings import PanelSettings

__all__ = [
    "LOCAL_NODE_FILE",
    "LocalNode",
    "create_registration_token",
    "ensure_local_node",
    "install_commands",
    "register_node",
]

log = get_logger(__name__)

LOCAL_NODE_FILE = "node.json"
MAX_TOKEN_LENGTH = 128


def install_commands(panel_url: str, token: str) -> tuple[str, str]:
    """The one-line installer (as root on the node) and the bare `daemon register` command."""
    panel, secret = shlex.quote(panel_url), shlex.quote(token)
    install = (
        f"curl -fsSL {shlex.quote(panel_url.rstrip('/') + '/api/v1/nodes/install-daemon.sh')}"
        f" | sudo sh -s -- --panel {panel} --token {secret}"
    )
    return install, f"stellarstack daemon register --panel {panel} --token {secret}"


async def _name_taken(db: AsyncSession, name: str) -> bool:
    found = await db.scalar(sa.select(sa.func.count()).where(Node.name == name))
    return bool(found)


async def create_registration_token(
    db: AsyncSession, body: RegistrationTokenCreate, user: User, settings: PanelSettings
) -> tuple[RegistrationTokenOut, NodeRegistrationToken]:
    """Create a single-use token for a node called `body.name` (shown once)."""
    if await _name_taken(db, body.name):
        raise Conflict(f"A node called {body.name!r} already exists; choose another name.")
    token = new_registration_token()
    expires = datetime.now(UTC) + timedelta(hours=settings.registration_token_hours)
    row = NodeRegistrationToken(
        token_hash=token_hash(token),
        name=body.name,
        region=body.region,
        location=body.location,
        max_servers=body.max_servers,
        expires_at=expires,
        created_by_id=user.id,
    )
    db.add(row)
    await db.flush()
    install, register = install_commands(settings.effective_public_url, token)
    out = RegistrationTokenOut(
        registration_token=token,
        expires_at=expires,
        name=body.name,
        region=body.region,
        max_servers=body.max_servers,
        install_command=install,
        register_command=register,
    )
    return out, row


async def _claim(db: AsyncSession, presented: str | None) -> NodeRegistrationToken:
    """Mark the token used (atomically) and return it; 401 saying why when it cannot be."""
    if (
        not presented
        or not presented.startswith(REGISTRATION_TOKEN_PREFIX)
        or len(presented) > MAX_TOKEN_LENGTH
    ):
        raise Unauthorized(
            "Send a registration token (strk_reg_…) from the panel in X-Registration-Token."
        )
    digest, now = token_hash(presented), datetime.now(UTC)
    claimed = await db.scalar(
        sa.update(NodeRegistrationToken)
        .where(
            NodeRegistrationToken.token_hash == digest,
            NodeRegistrationToken.used_at.is_(None),
            NodeRegistrationToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(NodeRegistrationToken.id)
    )
    if claimed is None:
        row = await db.scalar(
            sa.select(NodeRegistrationToken).where(NodeRegistrationToken.token_hash == digest)
        )
        if row is None:
            raise Unauthorized("This registration token is not valid; create one in the panel.")
        if row.used_at is not None:
            raise Unauthorized(
                "This registration token has already been used; create a new one in the panel."
            )
        raise Unauthorized("This registration token has expired; create a new one in the panel.")
    row = await db.get(NodeRegistrationToken, claimed, populate_existing=True)
    assert row is not None
    return row


async def register_node(
    db: AsyncSession,
    presented_token: str | None,
    body: NodeRegistration,
    pki: NodePki,
    settings: PanelSettings,
) -> tuple[NodeRegistered, Node]:
    """Admit a daemon: claim its token, create the node, certify its key, grant Redis access."""
    registration = await _claim(db, presented_token)
    compatibility = check_compatibility(__version__, body.version)
    if not compatibility.compatible:
        raise ValidationFailed(
            [FieldError("version", compatibility.message)], compatibility.message
        )
    if await _name_taken(db, registration.name):
        raise Conflict(
            f"A node called {registration.name!r} already exists; rename it in the panel "
            "or create a token with another name."
        )
    node_id = uuid.uuid4()
    try:
        certificate = pki.ca.issue(
            node_id, body.public_key, hostname=body.hostname, days=settings.node_certificate_days
        )
    except InvalidPublicKey as exc:
        raise ValidationFailed([FieldError("publicKey", str(exc))], str(exc)) from exc
    api_token = new_node_token()
    node = Node(
        id=node_id,
        name=registration.name,
        fqdn=body.hostname,
        scheme=body.scheme,
        port=body.port,
        sftp_port=body.sftp_port,
        region=registration.region,
        location=registration.location,
        max_servers=registration.max_servers,
        cpu_cores=body.specs.cpu,
        memory_mb=body.specs.memory,
        disk_mb=body.specs.disk,
        status=NodeStatus.STARTING,
        daemon_version=body.version,
        api_token_hash=token_hash(api_token),
        certificate_serial=certificate.serial,
        certificate_fingerprint=certificate.fingerprint,
        certificate_expires_at=certificate.expires_at,
    )
    db.add(node)
    registration.node_id = node_id
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"A node called {registration.name!r} already exists; rename it in the panel "
            "or create a token with another name."
        ) from exc
    await pki.credentials.grant(str(node_id), node.api_token_hash)
    log.info("nodes.registered", node_id=str(node_id), name=node.name, hostname=body.hostname)
    registered = NodeRegistered(
        node_id=node_id,
        api_token=api_token,
        certificate=certificate.pem,
        ca_certificate=pki.ca.certificate_pem,
        panel_public_key=pki.signing_key.public_key_pem,
        redis_url=node_redis_url(settings),
        panel_url=settings.effective_public_url,
    )
    return registered, node


@dataclass(frozen=True, slots=True)
class LocalNode:
    """The embedded default's own node: its id and API token."""

    node_id: str
    api_token: str


async def ensure_local_node(
    database: Database,
    daemon_dir: Path,
    specs: NodeSpecs,
    *,
    allocation_ip: str | None = None,
    allocation_ports: list[str] | None = None,
) -> LocalNode:
    """Register the embedded daemon as node `local` once; later starts reuse it.

    Its id and token are kept in `daemon_dir/node.json` (0600). If that node was deleted in
    the panel, a new one is registered. No Redis, no certificate: it runs in the panel's process.
    A new node gets `allocation_ports` on `allocation_ip`, each as tcp and udp, so the first
    server can be deployed without visiting the node page.
    """
    path = daemon_dir / LOCAL_NODE_FILE
    async with database.sessionmaker() as db:
        known = _read_local(path)
        if known is not None:
            node = await db.get(Node, uuid.UUID(known.node_id))
            if node is not None and node.api_token_hash == token_hash(known.api_token):
                return known
        name, suffix = "local", 1
        while await _name_taken(db, name):
            suffix += 1
            name = f"local-{suffix}"
        api_token = new_node_token()
        node = Node(
            name=name,
            description="This machine (the embedded default's own daemon).",
            fqdn="127.0.0.1",
            scheme="http",
            region="local",
            cpu_cores=specs.cpu,
            memory_mb=specs.memory,
            disk_mb=specs.disk,
            status=NodeStatus.STARTING,
            daemon_version=__version__,
            api_token_hash=token_hash(api_token),
        )
        db.add(node)
        await db.flush()
        if allocation_ip and allocation_ports:
            for protocol in (Protocol.TCP, Protocol.UDP):
                body = AllocationCreate(ip=allocation_ip, ports=allocation_ports, protocol=protocol)
                await add_allocations(db, node, body)
        local = LocalNode(str(node.id), api_token)
        await db.commit()
    write_private(path, json.dumps({"node_id": local.node_id, "api_token": api_token}).encode())
    log.info("nodes.local_registered", node_id=local.node_id, name=name)
    return local


def _read_local(path: Path) -> LocalNode | None:
    try:
        data = json.loads(path.read_text())
        return LocalNode(str(uuid.UUID(data["node_id"])), str(data["api_token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
