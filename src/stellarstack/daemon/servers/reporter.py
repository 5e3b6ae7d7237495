"""How the servers work tells the world: events to the panel, frames to console viewers.

A broker outage must not turn a finished power action into a failed one, so publishing
errors are logged here and the work goes on.
"""

from __future__ import annotations

from stellarstack.broker import BrokerError
from stellarstack.daemon.console import ConsoleHub, Outbound, ServerConsole
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import Runtime
from stellarstack.daemon.servers.store import SpecStore
from stellarstack.logs import get_logger
from stellarstack.protocol.events import (
    DeploymentProgress,
    EventData,
    NodeAlert,
    ServerStatus,
    ServerStatusChange,
)

__all__ = ["REASON_LIMIT", "Reporter"]

log = get_logger(__name__)

REASON_LIMIT = 4000
"""Characters of a status reason sent to the panel (the event allows 4096)."""


class Reporter:
    """Publishes server status, deployment progress and alerts; feeds console viewers."""

    def __init__(
        self,
        runtime: Runtime,
        store: SpecStore,
        publisher: EventPublisher,
        consoles: ConsoleHub | None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.publisher = publisher
        self.consoles = consoles

    def console(self, server_id: str) -> ServerConsole | None:
        """The server's console, if one is registered."""
        return None if self.consoles is None else self.consoles.get(server_id)

    async def register_console(self, server_id: str) -> None:
        """Attach the server's console (before a start, so no early output is lost)."""
        if self.consoles is not None:
            await self.consoles.register(server_id)

    async def _publish(self, data: EventData, server_id: str) -> None:
        try:
            await self.publisher.publish(data, server_id=server_id)
        except BrokerError as exc:
            log.warning("servers.publish_failed", server_id=server_id, error=str(exc))

    async def status(
        self,
        server_id: str,
        status: ServerStatus,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        oom_killed: bool = False,
        crash_count: int | None = None,
    ) -> None:
        """Publish a status change and show it to the server's console viewers."""
        log.info("servers.status", server_id=server_id, status=status.value, reason=reason)
        change = ServerStatusChange(
            status=status,
            exit_code=exit_code,
            reason=None if reason is None else reason[:REASON_LIMIT],
            oom_killed=oom_killed,
            crash_count=crash_count,
        )
        await self._publish(change, server_id)
        console = self.console(server_id)
        if console is not None:
            console.set_status(status.value)

    async def progress(
        self,
        server_id: str,
        deployment_id: str | None,
        stage: str,
        progress: float,
        message: str = "",
    ) -> None:
        """Publish one deployment step and show it to console viewers."""
        step = DeploymentProgress(
            deployment_id=deployment_id,
            stage=stage,
            progress=min(max(progress, 0.0), 1.0),
            message=message[:REASON_LIMIT],
        )
        await self._publish(step, server_id)
        console = self.console(server_id)
        if console is not None:
            console.broadcast(Outbound.DEPLOYMENT_PROGRESS, step.to_wire())

    async def alert(self, server_id: str, message: str) -> None:
        """Publish a warning about one server for the admins."""
        log.warning("servers.alert", server_id=server_id, message=message)
        await self._publish(
            NodeAlert(severity="warning", message=message[:REASON_LIMIT]), server_id
        )

    async def install_line(self, server_id: str, text: str) -> None:
        """Show one line of install output to the server's console viewers."""
        console = self.console(server_id)
        if console is not None:
            console.broadcast(Outbound.INSTALL_OUTPUT, text)
