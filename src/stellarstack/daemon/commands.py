"""Execute command stream entries at most once and report each outcome as an event.

`CommandExecutor.handle` is the StreamConsumer handler: it returns normally once the
outcome is recorded and published (the consumer then acks), and raises only when the
broker or the state database fails, so the entry is delivered again later.

Commands run concurrently by lane (`command_lane`): those about one server in order, one
after the other; different servers side by side; node-level commands at once. The executor
is safe to call concurrently: an id delivered again while it runs waits for its outcome.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from stellarstack import __version__
from stellarstack.broker import Broker, BrokerError, StreamMessage
from stellarstack.broker.consumer import Handler
from stellarstack.broker.lanes import LanedStreamConsumer
from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime.errors import ContainerRuntimeError
from stellarstack.daemon.state import CommandRecord, DaemonState
from stellarstack.logs import get_logger
from stellarstack.protocol import keys
from stellarstack.protocol.commands import Command, CommandStatus
from stellarstack.protocol.errors import MalformedMessageError, ProtocolError
from stellarstack.protocol.events import CommandResult
from stellarstack.protocol.wire import MAX_JSON_FIELD_BYTES, now

__all__ = [
    "CommandExecutor",
    "CommandHandler",
    "command_consumer",
    "command_lane",
    "consume_commands",
]

log = get_logger(__name__)

CommandHandler = Callable[[Command], Awaitable[dict[str, Any]]]
"""Runs one command and returns its result (JSON-ready); raises CommandFailedError."""

# Errors whose message is meant for the person who sent the command.
_REPORTABLE = (CommandFailedError, ContainerRuntimeError, ProtocolError)


def command_lane(message: StreamMessage) -> str | None:
    """`server:<id>` for an entry about one server (its payload's serverId), else None."""
    raw = message.fields.get("payload", "")
    if len(raw) > MAX_JSON_FIELD_BYTES:
        return None  # refused as malformed by the executor
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    server_id = payload.get("serverId") if isinstance(payload, dict) else None
    if isinstance(server_id, str) and server_id:
        return f"server:{server_id}"
    return None


def command_consumer(
    broker: Broker,
    node_id: str,
    handle: Handler,
    *,
    max_concurrent: int,
    **options: Any,
) -> LanedStreamConsumer:
    """The consumer of a node's command stream: one lane per server, `handle` per entry."""
    return LanedStreamConsumer(
        broker,
        keys.node_commands_stream(node_id),
        keys.COMMANDS_GROUP,
        node_id,
        handle,
        lane_of=command_lane,
        max_concurrent=max_concurrent,
        **options,
    )


async def consume_commands(consumer: LanedStreamConsumer) -> None:
    """Take back at once what a previous life of this daemon left pending, then consume.

    This daemon is the only consumer of its node's group, so whatever is pending when it
    starts was abandoned by a crash: waiting `min_idle_ms` for it would only add delay. The
    executor's idempotency record keeps an entry that was already running from running again.
    """
    try:
        recovered = await consumer.recover()
    except BrokerError as exc:
        log.warning("daemon.recovery_failed", error=str(exc))
    else:
        if recovered:
            log.info("daemon.commands_recovered", count=recovered)
    await consumer.run()


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
        self._running: dict[str, asyncio.Event] = {}  # ids being handled now -> done

    async def handle(self, message: StreamMessage) -> None:
        """Run one command entry at most once and publish its `command.result` event."""
        try:
            command = Command.from_fields(message.fields)
        except MalformedMessageError as exc:
            await self._reject(message, str(exc))
            return
        # The same id taken again while it runs (a redelivery in another lane): wait, so the
        # record tells its outcome rather than "interrupted".
        while (twin := self._running.get(command.id)) is not None:
            await twin.wait()
        done = self._running[command.id] = asyncio.Event()
        try:
            await self._handle_once(command)
        finally:
            del self._running[command.id]
            done.set()

    async def _handle_once(self, command: Command) -> None:
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
