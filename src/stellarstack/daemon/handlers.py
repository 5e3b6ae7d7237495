"""The commands this daemon version runs: `node.ping` and the power actions.

Every other type of spec §5.3 is answered `failed` ("not supported") by the executor until
its handler exists.
"""

from __future__ import annotations

from typing import Any

from stellarstack import __version__
from stellarstack.daemon.commands import CommandHandler
from stellarstack.daemon.console import ConsoleHub
from stellarstack.daemon.runtime.base import ContainerState, Runtime
from stellarstack.protocol.commands import Command, CommandType, ServerPowerPayload

__all__ = ["DEFAULT_STOP_GRACE", "CommandHandlers"]

DEFAULT_STOP_GRACE = 30.0
"""Seconds a server gets to stop after the stop signal before it is killed."""


def _describe(state: ContainerState) -> dict[str, Any]:
    return {"serverId": state.server_id, "status": state.status.value, "exitCode": state.exit_code}


class CommandHandlers:
    """Handlers bound to a runtime; `table()` maps command types to them."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        default_grace: float = DEFAULT_STOP_GRACE,
        consoles: ConsoleHub | None = None,
    ) -> None:
        self._runtime = runtime
        self._default_grace = default_grace
        self._consoles = consoles

    def table(self) -> dict[str, CommandHandler]:
        """Command type → handler, for the executor."""
        return {
            CommandType.NODE_PING: self.ping,
            CommandType.SERVER_START: self.start,
            CommandType.SERVER_STOP: self.stop,
            CommandType.SERVER_RESTART: self.restart,
            CommandType.SERVER_KILL: self.kill,
        }

    async def ping(self, command: Command) -> dict[str, Any]:
        """Answer without side effects (delivery checks and benchmarks)."""
        return {"pong": True, "runtime": self._runtime.name, "version": __version__}

    async def start(self, command: Command) -> dict[str, Any]:
        """Start a server (its console attached first, so no early output is lost)."""
        target = command.payload_as(ServerPowerPayload)
        console = (
            None if self._consoles is None else await self._consoles.register(target.server_id)
        )
        await self._runtime.start(target.server_id)
        if console is not None:
            console.set_status("running")
        return _describe(await self._runtime.status(target.server_id))

    async def stop(self, command: Command) -> dict[str, Any]:
        """Stop a server: its stop signal, then kill after the grace period."""
        target = command.payload_as(ServerPowerPayload)
        state = await self._runtime.stop(
            target.server_id,
            signal=target.signal or "SIGTERM",
            grace=target.grace or self._default_grace,
        )
        return _describe(state)

    async def restart(self, command: Command) -> dict[str, Any]:
        """Stop a server (if running), then start it."""
        await self.stop(command)
        return await self.start(command)

    async def kill(self, command: Command) -> dict[str, Any]:
        """Send a signal (SIGKILL unless given) to a running server."""
        target = command.payload_as(ServerPowerPayload)
        await self._runtime.kill(target.server_id, signal=target.signal or "SIGKILL")
        return {"serverId": target.server_id, "signal": target.signal or "SIGKILL"}
