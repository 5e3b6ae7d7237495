"""The daemon's own HTTP server: `/health` now; the console WebSocket and transfers come later."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Request, Response

from stellarstack import __version__
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.console_ws import mount_console
from stellarstack.daemon.runtime import ContainerRuntimeError
from stellarstack.protocol.wire import WireModel

__all__ = ["AgentDep", "Health", "create_app"]

HEALTH_PROBE_SECONDS = 2.0


class Health(WireModel):
    """Body of `GET /health`."""

    status: Literal["healthy", "degraded"]
    version: str
    runtime: str | None
    node_id: str | None


def _agent(request: Request) -> Agent:
    agent: Agent = request.app.state.agent
    return agent


AgentDep = Annotated[Agent, Depends(_agent)]


async def _healthy(agent: Agent) -> bool:
    """The agent runs, none of its loops died, and its runtime answers."""
    if not agent.running or agent.failures:
        return False
    try:
        async with asyncio.timeout(HEALTH_PROBE_SECONDS):
            await agent.runtime.ping()
    except (ContainerRuntimeError, TimeoutError, RuntimeError):
        return False
    return True


def create_app(agent: Agent) -> FastAPI:
    """The daemon's ASGI app, bound to its agent."""
    app = FastAPI(title="StellarStack daemon", version=__version__, docs_url=None, redoc_url=None)
    app.state.agent = agent

    @app.get("/health", response_model=Health)
    async def health(agent: AgentDep, response: Response) -> Health:
        """Report whether the daemon runs and its runtime answers (503 when degraded)."""
        healthy = await _healthy(agent)
        response.status_code = 200 if healthy else 503
        return Health(
            status="healthy" if healthy else "degraded",
            version=__version__,
            runtime=agent.runtime.name if agent.running else None,
            node_id=agent.node_id,
        )

    mount_console(app, agent)
    return app
