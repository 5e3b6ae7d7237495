"""The Agent: the daemon's work loop — runtime, local state, command loop and heartbeats.

Usage::

    agent = Agent(settings, broker)
    await agent.start()      # detects the runtime, opens state, starts the loops
    ...
    await agent.stop()       # lets running commands finish, stops the loops, closes all

Until the node is registered (`node_id` unset) the agent only opens its runtime and state
and says so in the log; it starts consuming commands once it has an id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from stellarstack import __version__
from stellarstack.broker import Broker, BrokerError
from stellarstack.broker.lanes import LanedStreamConsumer
from stellarstack.daemon.commands import CommandExecutor, command_consumer, consume_commands
from stellarstack.daemon.console import ConsoleHub, ConsoleLimits
from stellarstack.daemon.errors import DaemonStartError
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.handlers import CommandHandlers
from stellarstack.daemon.metrics import host_metrics, prime_cpu_sampler
from stellarstack.daemon.runtime import ContainerRuntimeError, Runtime, detect_runtime
from stellarstack.daemon.servers.manager import ServerManager
from stellarstack.daemon.servers.store import SpecStore
from stellarstack.daemon.state import DaemonState
from stellarstack.logs import get_logger
from stellarstack.protocol import keys
from stellarstack.protocol.events import NodeHealth, NodeHeartbeat
from stellarstack.protocol.wire import now
from stellarstack.settings import DaemonSettings

__all__ = ["PROCESSES_DIR", "STATE_FILE", "Agent"]

log = get_logger(__name__)

STATE_FILE = "state.db"
"""Name of the daemon's SQLite state inside its data directory."""

PROCESSES_DIR = "processes"
"""Where the process runtime records its servers, so they outlive a daemon restart."""


class Agent:
    """One node's daemon work; `runtime` may be given (the caller then owns and closes it)."""

    def __init__(
        self,
        settings: DaemonSettings,
        broker: Broker,
        *,
        runtime: Runtime | None = None,
        stop_grace: float = 10.0,
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.stop_grace = stop_grace
        self._given_runtime = runtime
        self._runtime: Runtime | None = None
        self._state: DaemonState | None = None
        self._consumer: LanedStreamConsumer | None = None
        self._servers: ServerManager | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: list[str] = []
        self._stopping = False
        self.consoles = ConsoleHub(ConsoleLimits.from_settings(settings))
        """Live consoles of this node's servers (filled when a server starts)."""

    @property
    def node_id(self) -> str | None:
        """The node id, or None while the node is not registered."""
        return self.settings.node_id

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._runtime is not None and not self._stopping

    @property
    def runtime(self) -> Runtime:
        """The runtime in use (after start())."""
        if self._runtime is None:
            raise RuntimeError("the agent is not started")
        return self._runtime

    @property
    def servers(self) -> ServerManager:
        """The game servers of this node (once started with a node id)."""
        if self._servers is None:
            raise RuntimeError("the agent is not started for a registered node")
        return self._servers

    @property
    def failures(self) -> list[str]:
        """Loops that died on an unexpected error (empty while healthy)."""
        return list(self._failed)

    async def start(self) -> None:
        """Detect the runtime, open the state, and start the command and heartbeat loops."""
        if self._runtime is not None:
            raise RuntimeError("the agent is already started")
        self._stopping, self._failed = False, []
        node_id = self.node_id
        if node_id is not None:
            keys.check_identifier(node_id, kind="node id")
        runtime = self._given_runtime or await self._detect_runtime(node_id)
        try:
            path = self.settings.data_dir / STATE_FILE
            self._state = await DaemonState.open(path)
            pruned = await self._state.prune_commands(now())
        except Exception as exc:
            if self._given_runtime is None:
                await runtime.close()
            raise DaemonStartError(f"cannot open the daemon state at {path}: {exc}") from exc
        self._runtime = runtime
        self.consoles.bind(runtime)
        log.info("daemon.started", node_id=node_id, runtime=runtime.name, pruned=pruned)
        if node_id is None:
            log.warning(
                "daemon.unregistered",
                hint="register this node in the panel and set its node_id; idling until then",
            )
            return
        await self._start_servers(node_id, runtime)
        self._start_loops(node_id, runtime, self._state)

    async def _start_servers(self, node_id: str, runtime: Runtime) -> None:
        """Create the server manager and reattach to servers left running by a previous life."""
        self._servers = ServerManager(
            runtime,
            SpecStore(self.settings.data_dir),
            EventPublisher(self.broker, node_id),
            self.consoles,
            stats_interval=self.settings.server_stats_interval,
            disk_interval=self.settings.server_disk_scan_interval,
        )
        try:
            await self._servers.reattach()
        except (ContainerRuntimeError, BrokerError, OSError) as exc:
            log.warning("daemon.reattach_failed", error=str(exc))

    async def _detect_runtime(self, node_id: str | None) -> Runtime:
        try:
            return await detect_runtime(
                self.settings.runtime,
                docker_host=self.settings.docker_host,
                node_id=node_id,
                state_dir=self.settings.data_dir / PROCESSES_DIR,
                pull_stall_timeout=self.settings.runtime_pull_stall_timeout,
                install_user=self.settings.runtime_install_user,
                process_log_bytes=self.settings.runtime_process_log_bytes,
            )
        except ContainerRuntimeError as exc:
            raise DaemonStartError(
                f"runtime {self.settings.runtime!r} is not available: {exc}"
            ) from exc

    def _start_loops(self, node_id: str, runtime: Runtime, state: DaemonState) -> None:
        publisher = EventPublisher(self.broker, node_id)
        executor = CommandExecutor(state, publisher, CommandHandlers(runtime, self.servers).table())
        self._consumer = command_consumer(
            self.broker,
            node_id,
            executor.handle,
            max_concurrent=self.settings.server_command_concurrency,
        )
        self._spawn(consume_commands(self._consumer), "commands")
        self._spawn(self.heartbeats(publisher), "heartbeats")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=f"daemon:{name}")
        task.add_done_callback(self._watch)
        self._tasks.append(task)

    def _watch(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        error = task.exception()
        reason = repr(error) if error else "returned early"
        self._failed.append(f"{task.get_name()}: {reason}")
        log.error("daemon.loop_died", loop=task.get_name(), error=reason, exc_info=error)

    async def heartbeats(self, publisher: EventPublisher) -> None:
        """Publish `node.heartbeat` now and then every `heartbeat_interval` seconds."""
        prime_cpu_sampler()
        while True:
            try:
                await self.beat(publisher)
            except BrokerError as exc:
                log.warning("daemon.heartbeat_failed", error=str(exc))
            except Exception:  # a bad sample must not end the heartbeats
                log.exception("daemon.heartbeat_crashed")
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def beat(self, publisher: EventPublisher) -> None:
        """Publish one heartbeat: degraded when the runtime does not answer."""
        health, containers = NodeHealth.HEALTHY, 0
        try:
            async with asyncio.timeout(5):
                containers = len(await self.runtime.list_managed())
        except (ContainerRuntimeError, TimeoutError) as exc:
            health = NodeHealth.DEGRADED
            log.warning("daemon.runtime_unhealthy", error=str(exc) or type(exc).__name__)
        if self._failed:
            health = NodeHealth.DEGRADED
        metrics = await asyncio.to_thread(host_metrics, self.settings.data_dir, containers)
        await publisher.publish(
            NodeHeartbeat(
                status=health, metrics=metrics, runtime=self.runtime.name, version=__version__
            )
        )

    async def stop(self) -> None:
        """Stop the loops (running commands may finish within `stop_grace`), then close all.

        Commands still queued behind a running one of their server are not started: their
        entries stay pending and run at the next start.
        """
        if self._runtime is None:
            return
        self._stopping = True
        if self._consumer is not None:
            self._consumer.stop()
        for task in self._tasks:
            if task.get_name() != "daemon:commands":
                task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace)
            for task in pending:
                log.warning("daemon.loop_cancelled", loop=task.get_name())
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks, self._consumer = [], None
        if self._servers is not None:
            await self._servers.close()
            self._servers = None
        await self.consoles.close()
        if self._state is not None:
            try:
                await self._state.close()
            except Exception as exc:
                log.warning("daemon.state_close_failed", error=repr(exc))
            self._state = None
        runtime, self._runtime = self._runtime, None
        if self._given_runtime is None:
            await runtime.close()
        log.info("daemon.stopped", node_id=self.node_id)
