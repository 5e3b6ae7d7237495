"""The commands this daemon version runs: `node.ping` and every `server.*` command.

Server commands go through the ServerManager (one power action at a time per server);
every other type of spec §5.3 is answered `failed` ("not supported") by the executor until
its handler exists.
"""

from __future__ import annotations

from typing import Any

from stellarstack import __version__
from stellarstack.daemon.commands import CommandHandler
from stellarstack.daemon.runtime.base import Runtime
from stellarstack.daemon.servers.manager import PowerAction, ServerManager
from stellarstack.protocol.commands import Command, CommandType, ServerPowerPayload
from stellarstack.protocol.servers import ServerDeletePayload, ServerSpec

__all__ = ["CommandHandlers"]


class CommandHandlers:
    """Handlers bound to a runtime and its server manager; `table()` maps types to them."""

    def __init__(self, runtime: Runtime, servers: ServerManager) -> None:
        self._runtime = runtime
        self._servers = servers

    def table(self) -> dict[str, CommandHandler]:
        """Command type → handler, for the executor."""
        return {
            CommandType.NODE_PING: self.ping,
            CommandType.SERVER_CREATE: self.create,
            CommandType.SERVER_REINSTALL: self.reinstall,
            CommandType.SERVER_DELETE: self.delete,
            CommandType.SERVER_START: self.start,
            CommandType.SERVER_STOP: self.stop,
            CommandType.SERVER_RESTART: self.restart,
            CommandType.SERVER_KILL: self.kill,
        }

    async def ping(self, command: Command) -> dict[str, Any]:
        """Answer without side effects (delivery checks and benchmarks)."""
        return {"pong": True, "runtime": self._runtime.name, "version": __version__}

    async def create(self, command: Command) -> dict[str, Any]:
        """Deploy a new server: pull, install, configure, create and (usually) start it."""
        return await self._servers.create(command.payload_as(ServerSpec))

    async def reinstall(self, command: Command) -> dict[str, Any]:
        """Run the install again over the server's kept files and recreate its container."""
        return await self._servers.reinstall(command.payload_as(ServerSpec))

    async def delete(self, command: Command) -> dict[str, Any]:
        """Remove a server's container, spec and (unless kept) files."""
        target = command.payload_as(ServerDeletePayload)
        return await self._servers.delete(target.server_id, keep_files=target.keep_files)

    async def _power(self, command: Command, action: PowerAction) -> dict[str, Any]:
        target = command.payload_as(ServerPowerPayload)
        return await self._servers.power(
            target.server_id, action, signal=target.signal, grace=target.grace, spec=target.spec
        )

    async def start(self, command: Command) -> dict[str, Any]:
        """Start a server (its console attached first) and wait for its ready check."""
        return await self._power(command, "start")

    async def stop(self, command: Command) -> dict[str, Any]:
        """Stop a server: its stop command or signal, then kill after the timeout."""
        return await self._power(command, "stop")

    async def restart(self, command: Command) -> dict[str, Any]:
        """Stop a server (if running), then start it."""
        return await self._power(command, "restart")

    async def kill(self, command: Command) -> dict[str, Any]:
        """Send a signal (SIGKILL unless given) to a running server."""
        return await self._power(command, "kill")
