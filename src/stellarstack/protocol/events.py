"""Daemon → panel events (spec §7.2): the envelope, the event types and their data models.

Usage::

    event = Event.create(NodeHeartbeat(status=NodeHealth.HEALTHY, metrics=m), node_id="n1")
    await broker.append(keys.node_events_stream("n1"), event.to_fields())
    ...
    event = Event.from_fields(message.fields)       # on the panel
    if event.type == EventType.COMMAND_RESULT:
        result = event.data_as(CommandResult)
"""

from __future__ import annotations

import builtins
import enum
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import Field, ValidationError

from stellarstack.protocol.commands import CommandStatus
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.keys import check_identifier
from stellarstack.protocol.wire import Envelope, WireModel, new_message_id, now

__all__ = [
    "CommandResult",
    "DeploymentProgress",
    "Event",
    "EventData",
    "EventType",
    "NodeAlert",
    "NodeHealth",
    "NodeHeartbeat",
    "NodeMetrics",
    "ServerCommand",
    "ServerLog",
    "ServerMetrics",
    "ServerStatus",
    "ServerStatusChange",
]


class EventType(enum.StrEnum):
    """Event types (spec §7.2, plus command results and deployment progress)."""

    SERVER_STATUS = "server.status"
    SERVER_METRICS = "server.metrics"
    SERVER_LOG = "server.log"
    NODE_HEARTBEAT = "node.heartbeat"
    NODE_ALERT = "node.alert"
    SERVER_COMMAND = "server.command"
    COMMAND_RESULT = "command.result"
    DEPLOYMENT_PROGRESS = "deployment.progress"


class ServerStatus(enum.StrEnum):
    """Lifecycle status of a game server as the panel shows it."""

    INSTALLING = "installing"
    INSTALL_FAILED = "install_failed"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"


class NodeHealth(enum.StrEnum):
    """Health a node reports about itself in its heartbeat."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"


class EventData(WireModel):
    """Base of the typed `data` of an event; `event_type` names the event that carries it."""

    event_type: ClassVar[EventType]


class ServerStatusChange(EventData):
    """`server.status`: a server changed status."""

    event_type: ClassVar[EventType] = EventType.SERVER_STATUS
    status: ServerStatus
    exit_code: int | None = None
    reason: str | None = Field(default=None, max_length=4096)
    """Why: the exit reason of a crash ("out of memory", "exit code 1"), an install error."""
    oom_killed: bool = False
    crash_count: int | None = Field(default=None, ge=0)


class ServerMetrics(EventData):
    """`server.metrics`: resource use of one server."""

    event_type: ClassVar[EventType] = EventType.SERVER_METRICS
    cpu: float = Field(ge=0, description="Percent of one core (may exceed 100).")
    memory: int = Field(ge=0, description="Bytes used.")
    memory_limit: int = Field(ge=0, description="Bytes allocated (0 = unlimited).")
    disk: int = Field(ge=0, description="Bytes used in the server directory.")
    network_rx: int = Field(ge=0)
    network_tx: int = Field(ge=0)
    uptime: float = Field(ge=0, description="Seconds since the server started.")


class ServerLog(EventData):
    """`server.log`: one console line."""

    event_type: ClassVar[EventType] = EventType.SERVER_LOG
    stream: Literal["stdout", "stderr"]
    message: str = Field(max_length=65536)
    timestamp: float


class NodeMetrics(WireModel):
    """Host metrics in a heartbeat: percentages, byte counts and managed server count."""

    cpu: float = Field(ge=0, le=100, description="Percent of all cores.")
    memory: float = Field(ge=0, le=100, description="Percent of RAM used.")
    memory_used: int = Field(default=0, ge=0)
    memory_total: int = Field(default=0, ge=0)
    disk: float = Field(ge=0, le=100, description="Percent of the data disk used.")
    disk_used: int = Field(default=0, ge=0)
    disk_total: int = Field(default=0, ge=0)
    containers: int = Field(ge=0, description="Servers managed by this daemon.")
    network_rx: int = Field(ge=0, description="Bytes received since boot.")
    network_tx: int = Field(ge=0, description="Bytes sent since boot.")


class NodeHeartbeat(EventData):
    """`node.heartbeat`: the daemon is alive; its health and host metrics."""

    event_type: ClassVar[EventType] = EventType.NODE_HEARTBEAT
    status: NodeHealth
    metrics: NodeMetrics
    runtime: str | None = None
    version: str | None = None


class NodeAlert(EventData):
    """`node.alert`: something an admin should see."""

    event_type: ClassVar[EventType] = EventType.NODE_ALERT
    severity: Literal["info", "warning", "critical"]
    message: str = Field(max_length=4096)


class ServerCommand(EventData):
    """`server.command`: a power action requested through the API (published by the panel)."""

    event_type: ClassVar[EventType] = EventType.SERVER_COMMAND
    command_id: str
    command: Literal["start", "stop", "restart", "kill"]
    user_id: str


class CommandResult(EventData):
    """`command.result`: how a command ended on the daemon."""

    event_type: ClassVar[EventType] = EventType.COMMAND_RESULT
    command_id: str
    command_type: str
    status: CommandStatus
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    replayed: bool = False
    """True when this repeats the recorded outcome of an id delivered again (not re-run)."""


class DeploymentProgress(EventData):
    """`deployment.progress`: a step of installing or updating a server."""

    event_type: ClassVar[EventType] = EventType.DEPLOYMENT_PROGRESS
    deployment_id: str | None = Field(default=None, max_length=64)
    stage: str = Field(max_length=64)
    progress: float = Field(ge=0, le=1)
    message: str = Field(default="", max_length=4096)


_DataT = TypeVar("_DataT", bound=EventData)


class Event(Envelope):
    """One event: `{id, type, nodeId, serverId?, timestamp, data}`; times are Unix seconds."""

    json_fields: ClassVar[frozenset[str]] = frozenset({"data"})

    id: str = Field(default_factory=new_message_id, min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
    node_id: str
    server_id: str | None = None
    timestamp: float = Field(default_factory=now, ge=0)
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        data: EventData,
        *,
        node_id: str,
        server_id: str | None = None,
        at: float | None = None,
    ) -> Self:
        """An event carrying `data`, its type taken from the data model."""
        check_identifier(node_id, kind="node id")
        if server_id is not None:
            check_identifier(server_id, kind="server id")
        return cls(
            type=data.event_type.value,
            node_id=node_id,
            server_id=server_id,
            timestamp=now() if at is None else at,
            data=data.to_wire(),
        )

    @property
    def known_type(self) -> EventType | None:
        """The type as an EventType, or None when this build does not know it."""
        try:
            return EventType(self.type)
        except ValueError:
            return None

    def data_as(self, model: builtins.type[_DataT]) -> _DataT:
        """Validate `data` as `model`; raise MalformedMessageError on a type or shape mismatch."""
        if self.type != model.event_type:
            raise MalformedMessageError(f"event {self.type!r} does not carry {model.__name__}")
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            raise MalformedMessageError(f"malformed {model.__name__}: {exc.errors()[:3]}") from exc
