"""The wire contract between panel and daemon: commands, events and key names.

Both sides import this package; nothing in it does I/O.
"""

from stellarstack.protocol import keys
from stellarstack.protocol.commands import (
    DEFAULT_COMMAND_TTL,
    Command,
    CommandStatus,
    CommandType,
    ServerPowerPayload,
)
from stellarstack.protocol.errors import (
    InvalidIdentifierError,
    MalformedMessageError,
    ProtocolError,
)
from stellarstack.protocol.events import (
    CommandResult,
    DeploymentProgress,
    Event,
    EventData,
    EventType,
    NodeAlert,
    NodeHealth,
    NodeHeartbeat,
    NodeMetrics,
    ServerCommand,
    ServerLog,
    ServerMetrics,
    ServerStatus,
    ServerStatusChange,
)

__all__ = [
    "DEFAULT_COMMAND_TTL",
    "Command",
    "CommandResult",
    "CommandStatus",
    "CommandType",
    "DeploymentProgress",
    "Event",
    "EventData",
    "EventType",
    "InvalidIdentifierError",
    "MalformedMessageError",
    "NodeAlert",
    "NodeHealth",
    "NodeHeartbeat",
    "NodeMetrics",
    "ProtocolError",
    "ServerCommand",
    "ServerLog",
    "ServerMetrics",
    "ServerPowerPayload",
    "ServerStatus",
    "ServerStatusChange",
    "keys",
]
