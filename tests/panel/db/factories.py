"""Realistic rows for database tests: one of everything, linked as the panel links them."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.panel.db.enums import (
    ActorType,
    ApiKeyKind,
    BackupStatus,
    CommandStatus,
    DeploymentKind,
    NodeStatus,
    Protocol,
    Role,
    ScheduleAction,
    TokenPurpose,
)
from stellarstack.panel.db.models import (
    Account,
    Allocation,
    ApiKey,
    AuditLog,
    Backup,
    Blueprint,
    BlueprintVersion,
    Deployment,
    Node,
    NodeCommand,
    NodeRegistrationToken,
    OneTimeToken,
    RecoveryCode,
    Schedule,
    ScheduleTask,
    Server,
    ServerVariable,
    Session,
    Subuser,
    User,
)

NOW = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)


def digest(text: str) -> str:
    """A SHA-256 hex digest, as stored for every token."""
    return hashlib.sha256(text.encode()).hexdigest()


def make_user(email: str = "owner@example.com", role: Role = Role.USER) -> User:
    """A user with a password."""
    return User(email=email, name=email.split("@")[0], password_hash="$argon2id$fake", role=role)


def make_node(name: str = "eu-west-1") -> Node:
    """An online node."""
    return Node(
        name=name,
        fqdn=f"{name}.nodes.example.com",
        region="eu-west",
        cpu_cores=8,
        memory_mb=32768,
        disk_mb=500_000,
        status=NodeStatus.ONLINE,
        api_token_hash=digest(f"strk_node_{name}"),
        last_metrics={"cpuUsage": 45.2, "memoryUsage": 68.5},
    )


def make_blueprint(slug: str = "minetest") -> Blueprint:
    """A blueprint with its full definition."""
    return Blueprint(
        slug=slug,
        name="Minetest",
        category="sandbox",
        docker_image="stellarstack/minetest:5.8",
        default_memory_mb=1024,
        default_cpu=100,
        default_disk_mb=2048,
        config_schema={"type": "object", "properties": {"PORT": {"type": "integer"}}},
        definition={"ports": [{"container": 30000, "protocol": "udp"}]},
    )


def make_server(owner: User, node: Node, blueprint: Blueprint, name: str = "My world") -> Server:
    """A running server."""
    return Server(
        name=name,
        owner=owner,
        node=node,
        blueprint=blueprint,
        memory_mb=1024,
        disk_mb=2048,
        cpu_limit=100,
    )


@dataclass
class Seeded:
    """The ids of the rows `seed_everything` created."""

    owner_id: uuid.UUID
    friend_id: uuid.UUID
    node_id: uuid.UUID
    server_id: uuid.UUID
    schedule_id: uuid.UUID


def _server_children(server: Server, node: Node, friend: User, schedule: Schedule) -> list[object]:
    backup = Backup(server=server, name="before update", status=BackupStatus.COMPLETED)
    return [
        ServerVariable(server=server, key="PORT", value="30000"),
        ServerVariable(server=server, key="MOTD", value="Welcome <b>home</b>"),
        ServerVariable(server=server, key="EMPTY", value=""),
        Allocation(
            node=node,
            server=server,
            ip="0.0.0.0",
            port=30000,
            protocol=Protocol.UDP,
            is_primary=True,
        ),
        Allocation(node=node, server=server, ip="0.0.0.0", port=30001),
        Subuser(user=friend, server=server, permissions=["server.console", "server.start"]),
        backup,
        Backup(server=server, name="nightly", status=BackupStatus.FAILED, error="disk full"),
        schedule,
        ScheduleTask(
            schedule=schedule,
            sequence=1,
            action=ScheduleAction.COMMAND,
            payload={"command": "/say restarting"},
        ),
        ScheduleTask(
            schedule=schedule, sequence=2, action=ScheduleAction.RESTART, time_offset_s=60
        ),
        Deployment(
            server=server,
            kind=DeploymentKind.UPDATE,
            backup_id=backup.id,
            from_version_tag="5.7",
            to_version_tag="5.8",
        ),
        NodeCommand(
            node_id=node.id,
            server_id=server.id,
            type="server.start",
            status=CommandStatus.SUCCEEDED,
            expires_at=NOW + timedelta(minutes=5),
        ),
    ]


def _identity_rows(owner: User, node: Node) -> list[object]:
    return [
        Session(user=owner, token_hash=digest("cookie"), expires_at=NOW + timedelta(days=7)),
        Account(user=owner, provider="github", provider_account_id="12345"),
        ApiKey(
            user=owner,
            name="ci",
            prefix="strk_ab12",
            key_hash=digest("key"),
            kind=ApiKeyKind.CLIENT,
            permissions=["server.view"],
        ),
        RecoveryCode(user=owner, code_hash=digest("code-1")),
        RecoveryCode(user=owner, code_hash=digest("code-2")),
        OneTimeToken(
            user_id=owner.id,
            purpose=TokenPurpose.VERIFY_EMAIL,
            token_hash=digest("verify"),
            expires_at=NOW + timedelta(hours=1),
        ),
        NodeRegistrationToken(
            token_hash=digest("strk_reg_x"),
            name=node.name,
            region="eu-west",
            expires_at=NOW + timedelta(days=1),
            used_at=NOW,
            node_id=node.id,
            created_by_id=owner.id,
        ),
        AuditLog(
            user_id=owner.id,
            actor_type=ActorType.USER,
            actor_id=str(owner.id),
            action="server.create",
            resource="server",
            details={"name": "My world"},
        ),
    ]


async def seed_everything(session: AsyncSession) -> Seeded:
    """One row or more in every table, committed: a server with all its children."""
    owner, friend = make_user(), make_user("friend@example.com")
    node, blueprint = make_node(), make_blueprint()
    blueprint.versions = [
        BlueprintVersion(tag="5.8", name="5.8 (Latest)", recommended=True),
        BlueprintVersion(tag="5.7", name="5.7", position=1),
    ]
    server = make_server(owner, node, blueprint)
    schedule = Schedule(server=server, name="Nightly restart", cron="0 4 * * *")
    session.add_all([owner, friend, node, blueprint, server])
    session.add(Allocation(node=node, ip="0.0.0.0", port=30002))  # a free one
    session.add_all(_server_children(server, node, friend, schedule))
    session.add_all(_identity_rows(owner, node))
    await session.commit()
    return Seeded(owner.id, friend.id, node.id, server.id, schedule.id)
