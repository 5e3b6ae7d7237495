"""Enumerations stored in the database (by value, as VARCHAR; see `base.enum_column_type`).

Adding a member needs no migration. Renaming or removing one does: existing rows hold values.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActorType",
    "ApiKeyKind",
    "AuditStatus",
    "BackupAdapter",
    "BackupStatus",
    "BlueprintSource",
    "CommandStatus",
    "DeploymentKind",
    "DeploymentStatus",
    "NodeStatus",
    "Protocol",
    "Role",
    "ScheduleAction",
    "ServerStatus",
    "TokenPurpose",
]


class Role(StrEnum):
    """Platform role of a user (spec §4.4.1); per-server rights come from subusers."""

    USER = "user"
    SUPPORT = "support"
    MODERATOR = "moderator"
    ADMIN = "admin"
    SUPER_ADMIN = "super_admin"


class NodeStatus(StrEnum):
    """Where a node is in its lifecycle (spec §5.2)."""

    OFFLINE = "offline"
    STARTING = "starting"
    ONLINE = "online"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    MAINTENANCE = "maintenance"


class ServerStatus(StrEnum):
    """State of a game server as last reported by its daemon (or set by the panel)."""

    OFFLINE = "offline"
    INSTALLING = "installing"
    REINSTALLING = "reinstalling"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"
    SUSPENDED = "suspended"
    INSTALL_FAILED = "install_failed"


class Protocol(StrEnum):
    """Transport protocol of an allocation."""

    TCP = "tcp"
    UDP = "udp"


class BackupStatus(StrEnum):
    """Progress of a backup."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class BackupAdapter(StrEnum):
    """Where a backup archive is stored."""

    LOCAL = "local"
    S3 = "s3"


class CommandStatus(StrEnum):
    """Delivery state of a panel → daemon command (DESIGN.md §2)."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    DEAD_LETTERED = "dead_lettered"


class DeploymentKind(StrEnum):
    """What a deployment does to a server (spec §8.1, §10.4)."""

    INSTALL = "install"
    REINSTALL = "reinstall"
    UPDATE = "update"
    ROLLBACK = "rollback"
    TRANSFER = "transfer"


class DeploymentStatus(StrEnum):
    """Progress of a deployment."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


class ActorType(StrEnum):
    """Who performed an audited action (spec §12.4)."""

    USER = "user"
    API_KEY = "api_key"
    DAEMON = "daemon"
    SYSTEM = "system"


class AuditStatus(StrEnum):
    """Outcome of an audited action."""

    SUCCESS = "success"
    FAILURE = "failure"


class ApiKeyKind(StrEnum):
    """Client keys act as their user; application keys use the admin API."""

    CLIENT = "client"
    APPLICATION = "application"


class TokenPurpose(StrEnum):
    """What a one-time token may be used for; a token is never valid for another purpose."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    INVITE = "invite"
    TWO_FACTOR = "two_factor"  # a sign-in waiting for its second factor (5 minutes)
    OAUTH_STATE = "oauth_state"  # an OAuth authorization in flight (state + PKCE verifier)


class BlueprintSource(StrEnum):
    """Where a blueprint came from."""

    BUILTIN = "builtin"
    OPERATOR = "operator"
    EGG = "egg"
    GIT = "git"


class ScheduleAction(StrEnum):
    """What one schedule task does."""

    COMMAND = "command"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"
    BACKUP = "backup"
