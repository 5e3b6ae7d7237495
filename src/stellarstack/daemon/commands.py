"""Execute command stream entries at most once and report each outcome as an event.

`CommandExecutor.handle` is the StreamConsumer handler: it returns normally once the
outcome is recorded and published (the consumer then acks), and raises only when the
broker or the state database fails, so the entry is delivered again later.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from stellarstack import __version__
from stellarstack.broker import StreamMessage
from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime.errors import ContainerRuntimeError
from stellarstack.daemon.state import CommandRecord, DaemonState
from stellarstack.logs import get_logger
from stellarstack.protocol.commands import Command, CommandStatus
from stellarstack.protocol.errors import MalformedMessageError, ProtocolError
from stellarstack.protocol.events import CommandResult
from stellarstack.protocol.wire import now

__all__ = ["CommandExecutor", "CommandHandler"]

log = get_logger(__name__)

CommandHandler = Callable[[Command], Awaitable[dict[str, Any]]]
"""Runs one command and returns its result (JSON-ready); raises CommandFailedError."""

# Errors whose message is meant for the person who sent the command.
_REPORTABLE = (CommandFailedError, ContainerRuntimeError, ProtocolError)


class CommandExecutor:
    """Decode, deduplicate, check expiry, dispatch by type, record and report."""

    def __init__(
        self,
        state: DaemonState,
        publisher: EventPublisher,
        handlers: Mapping[str, CommandHandler],
    ) -> None:
        self._state = state
        self._publisher = publisher
        self._handlers = dict(handlers)

    async def handle(self, message: StreamMessage) -> None:
        """Run one command entry at most once and publish its `command.result` event."""
        try:
            command = Command.from_fields(message.fields)
        except MalformedMessageError as exc:
            await self._reject(message, str(exc))
            return
        at = now()
        previous = await self._state.begin_command(command, at=at)
        if previous is not None:
            await self._repeat(command, previous)
            return
        if command.is_expired(at):
            late = at - command.expires_at
            await self._finish(command, CommandStatus.EXPIRED, error=f"expired {late:.1f}s ago")
            return
        await self._execute(command)

    async def _execute(self, command: Command) -> None:
        handler = self._handlers.get(command.type)
        if handler is None:
            error = f"command type {command.type!r} is not supported by daemon {__version__}"
            await self._finish(command, CommandStatus.FAILED, error=error)
            return
        started = time.perf_counter()
        try:
            result = await handler(command)
        except _REPORTABLE as exc:
            await self._finish(command, CommandStatus.FAILED, error=str(exc))
        except Exception as exc:
            log.exception("daemon.command_crashed", id=command.id, type=command.type)
            error = f"internal error in the daemon ({type(exc).__name__}); see its log"
            await self._finish(command, CommandStatus.FAILED, error=error)
        else:
            await self._finish(command, CommandStatus.COMPLETED, result=result)
        log.info(
            "daemon.command_ran",
            id=command.id,
            type=command.type,
            ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _finish(
        self,
        command: Command,
        status: CommandStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        record = await self._state.finish_command(
            command.id, status, at=now(), result=result, error=error
        )
        await self._report(record)

    async def _repeat(self, command: Command, previous: CommandRecord) -> None:
        """An id seen before: never run it again; report what is known."""
        if previous.finished:
            log.info("daemon.command_repeated", id=command.id, outcome=previous.outcome)
            await self._report(previous, replayed=True)
            return
        log.warning("daemon.command_interrupted", id=command.id, type=command.type)
        error = "interrupted: the daemon stopped while running this command; not run again"
        await self._finish(command, CommandStatus.FAILED, error=error)

    async def _report(self, record: CommandRecord, *, replayed: bool = False) -> None:
        assert record.outcome is not None
        await self._publisher.publish(
            CommandResult(
                command_id=record.id,
                command_type=record.type,
                status=record.outcome,
                result=record.result,
                error=record.error,
                replayed=replayed,
            )
        )
        if record.outcome is not CommandStatus.COMPLETED:
            log.info(
                "daemon.command_not_completed",
                id=record.id,
                outcome=record.outcome,
                error=record.error,
            )

    async def _reject(self, message: StreamMessage, reason: str) -> None:
        """An entry that is not a command: report it (no id to record) and let it be acked."""
        command_id = message.fields.get("id", "")[:128] or f"entry:{message.id}"
        command_type = message.fields.get("type", "")[:64] or "unknown"
        log.warning("daemon.command_rejected", entry=message.id, reason=reason)
        await self._publisher.publish(
            CommandResult(
                command_id=command_id,
                command_type=command_type,
                status=CommandStatus.REJECTED,
                error=reason,
            )
        )
