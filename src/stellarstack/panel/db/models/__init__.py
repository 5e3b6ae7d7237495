"""Every table of the panel, by domain; importing this package registers them all."""

from __future__ import annotations

from stellarstack.panel.db.models.blueprints import Blueprint, BlueprintVersion
from stellarstack.panel.db.models.identity import (
    Account,
    ApiKey,
    OneTimeToken,
    RecoveryCode,
    Session,
    User,
)
from stellarstack.panel.db.models.nodes import Allocation, Node, NodeCommand, NodeRegistrationToken
from stellarstack.panel.db.models.operations import AuditLog, Backup, Schedule, ScheduleTask
from stellarstack.panel.db.models.servers import Deployment, Server, ServerVariable, Subuser

__all__ = [
    "Account",
    "Allocation",
    "ApiKey",
    "AuditLog",
    "Backup",
    "Blueprint",
    "BlueprintVersion",
    "Deployment",
    "Node",
    "NodeCommand",
    "NodeRegistrationToken",
    "OneTimeToken",
    "RecoveryCode",
    "Schedule",
    "ScheduleTask",
    "Server",
    "ServerVariable",
    "Session",
    "Subuser",
    "User",
]
