"""Per-server stats: about once a second, `server.metrics` to the panel and `stats` to viewers.

CPU, memory and network come from the runtime each tick; disk use is a walk of the server's
directory, done in a thread and at most every `disk_interval` seconds (a big world takes a
while to walk, and its size does not change by the second).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from stellarstack.broker import BrokerError
from stellarstack.daemon.console import Outbound, ServerConsole
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import ContainerRuntimeError, Runtime
from stellarstack.logs import get_logger
from stellarstack.protocol.events import ServerMetrics

__all__ = ["DiskUsage", "StatsLoop", "directory_bytes"]

log = get_logger(__name__)


def directory_bytes(root: Path) -> int:
    """Bytes of the regular files under `root`, symlinks not followed (blocking)."""
    total = 0
    for folder, _, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we walked
            if not os.path.islink(os.path.join(folder, name)):
                total += info.st_size
    return total


class DiskUsage:
    """The size of a server's directory, re-walked at most every `interval` seconds."""

    def __init__(self, root: Path, interval: float) -> None:
        self.root = root
        self.interval = interval
        self._bytes = 0
        self._walked_at: float | None = None

    async def current(self) -> int:
        """The cached size, refreshed in a thread when older than the interval."""
        now = asyncio.get_running_loop().time()
        if self._walked_at is None or now - self._walked_at >= self.interval:
            return await self.refresh()
        return self._bytes

    async def refresh(self) -> int:
        """Walk the directory now (in a thread) and cache the size."""
        self._walked_at = asyncio.get_running_loop().time()
        self._bytes = await asyncio.to_thread(directory_bytes, self.root)
        return self._bytes


class StatsLoop:
    """Samples one running server until cancelled."""

    def __init__(
        self,
        server_id: str,
        runtime: Runtime,
        publisher: EventPublisher,
        console: Callable[[], ServerConsole | None],
        disk: DiskUsage,
        *,
        interval: float,
        disk_limit: int | None = None,
        over_disk: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.server_id = server_id
        self._runtime = runtime
        self._publisher = publisher
        self._console = console
        self._disk = disk
        self._interval = interval
        self._disk_limit = disk_limit
        self._over_disk = over_disk
        self._warned = False

    async def sample(self, started_at: datetime | None) -> ServerMetrics:
        """One sample of the server's resource use."""
        stats = await self._runtime.stats(self.server_id)
        uptime = (datetime.now(UTC) - started_at).total_seconds() if started_at else 0.0
        return ServerMetrics(
            cpu=stats.cpu_percent,
            memory=stats.memory_bytes,
            memory_limit=stats.memory_limit_bytes,
            disk=await self._disk.current(),
            network_rx=stats.network_rx_bytes,
            network_tx=stats.network_tx_bytes,
            uptime=max(uptime, 0.0),
        )

    async def _check_disk(self, used: int) -> None:
        """Warn once each time the server's files grow past its disk limit."""
        if self._disk_limit is None or self._over_disk is None:
            return
        over = used > self._disk_limit
        if over and not self._warned:
            await self._over_disk(used)
        self._warned = over

    async def run(self) -> None:
        """Publish a sample about every `interval` seconds while the server runs."""
        loop = asyncio.get_running_loop()
        started_at: datetime | None = None
        while True:
            began = loop.time()
            try:
                if started_at is None:
                    started_at = (await self._runtime.status(self.server_id)).started_at
                metrics = await self.sample(started_at)
                await self._publisher.publish(metrics, server_id=self.server_id)
                console = self._console()
                if console is not None:
                    console.broadcast(Outbound.STATS, metrics.to_wire())
                await self._check_disk(metrics.disk)
            except (ContainerRuntimeError, BrokerError, OSError) as exc:
                log.debug("servers.stats_skipped", server_id=self.server_id, error=str(exc))
            await asyncio.sleep(max(self._interval - (loop.time() - began), 0.05))
