"""Panel → daemon commands (spec §5.3): the envelope and the command types.

Usage::

    cmd = Command.create(CommandType.SERVER_START, {"serverId": "srv-1"}, ttl=60)
    await broker.append(keys.node_commands_stream(node_id), cmd.to_fields())
    ...
    cmd = Command.from_fields(message.fields)      # on the daemon
    if cmd.is_expired(now()):
        ...                                        # report `expired`, do not run
"""

from __future__ import annotations

import builtins
import enum
from typing import Any, ClassVar, Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator

from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.keys import check_identifier
from stellarstack.protocol.servers import ServerSpec
from stellarstack.protocol.wire import Envelope, WireModel, new_message_id, now

__all__ = [
    "DEFAULT_COMMAND_TTL",
    "Command",
    "CommandStatus",
    "CommandType",
    "ServerPowerPayload",
]

DEFAULT_COMMAND_TTL = 300.0
"""Seconds a command stays valid when the sender gives no ttl."""


class CommandType(enum.StrEnum):
    """The command types a daemon understands (spec §5.3, plus `node.ping`)."""

    SERVER_CREATE = "server.create"
    SERVER_START = "server.start"
    SERVER_STOP = "server.stop"
    SERVER_RESTART = "server.restart"
    SERVER_KILL = "server.kill"
    SERVER_DELETE = "server.delete"
    SERVER_REINSTALL = "server.reinstall"
    FILES_READ = "files.read"
    FILES_WRITE = "files.write"
    FILES_DELETE = "files.delete"
    BACKUP_CREATE = "backup.create"
    BACKUP_RESTORE = "backup.restore"
    NODE_UPDATE = "node.update"
    NODE_DRAIN = "node.drain"
    NODE_SHUTDOWN = "node.shutdown"
    NODE_PING = "node.ping"
    """Round trip without side effects: health probes and the delivery benchmark."""


class CommandStatus(enum.StrEnum):
    """Outcome of a command, as reported in its `command.result` event."""

    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    """The entry could not be decoded; it was not run."""


class ServerPowerPayload(WireModel):
    """Payload of `server.start|stop|restart|kill`: which server, and how to stop it.

    `spec` (start and restart): the server's settings as the panel has them now; a daemon
    whose stored spec differs applies it before starting. Absent (older panels): the stored
    spec is used as it is.
    """

    server_id: str
    signal: str | None = Field(default=None, pattern=r"^(SIG)?[A-Z0-9]{1,12}$")
    grace: float | None = Field(default=None, gt=0, le=3600, description="Seconds before kill.")
    spec: ServerSpec | None = None

    @field_validator("server_id")
    @classmethod
    def _safe_server_id(cls, value: str) -> str:
        return check_identifier(value, kind="server id")

    @model_validator(mode="after")
    def _spec_of_this_server(self) -> Self:
        if self.spec is not None and self.spec.server_id != self.server_id:
            raise ValueError("spec.serverId is not the server this command is about")
        return self


_PayloadT = TypeVar("_PayloadT", bound=WireModel)


class Command(Envelope):
    """One command: `{id, type, payload, timestamp, expiresAt}`; times are Unix seconds."""

    json_fields: ClassVar[frozenset[str]] = frozenset({"payload"})

    id: str = Field(
        default_factory=new_message_id, min_length=1, max_length=128, pattern=r"^[\w.:-]+$"
    )
    # A plain string rather than CommandType, so a daemon older than its panel can still read
    # an unknown type and answer "unsupported" instead of dropping the entry as malformed.
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
    payload: dict[str, Any] = Field(default_factory=dict)
    timestamp: float = Field(default_factory=now, ge=0)
    expires_at: float = Field(ge=0)

    @model_validator(mode="after")
    def _expiry_after_creation(self) -> Self:
        if self.expires_at < self.timestamp:
            raise ValueError("expiresAt is before timestamp")
        return self

    @classmethod
    def create(
        cls,
        type: CommandType | str,
        payload: dict[str, Any] | None = None,
        *,
        ttl: float = DEFAULT_COMMAND_TTL,
        at: float | None = None,
        id: str | None = None,
    ) -> Self:
        """A new command valid for `ttl` seconds from `at` (default: now)."""
        created = now() if at is None else at
        extra: dict[str, Any] = {} if id is None else {"id": id}
        return cls(
            type=str(type),
            payload=payload or {},
            timestamp=created,
            expires_at=created + ttl,
            **extra,
        )

    @property
    def known_type(self) -> CommandType | None:
        """The type as a CommandType, or None when this build does not know it."""
        try:
            return CommandType(self.type)
        except ValueError:
            return None

    def is_expired(self, at: float) -> bool:
        """True when the command must not run any more at Unix time `at`."""
        return at >= self.expires_at

    def payload_as(self, model: builtins.type[_PayloadT]) -> _PayloadT:
        """Validate the payload as `model`; raise MalformedMessageError with the reason."""
        try:
            return model.model_validate(self.payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
                for err in exc.errors()[:5]
            )
            raise MalformedMessageError(f"invalid {self.type} payload: {problems}") from exc
