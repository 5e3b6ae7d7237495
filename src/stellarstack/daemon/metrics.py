"""Host metrics for heartbeats: cpu, memory, disk of the data directory, network counters."""

from __future__ import annotations

from pathlib import Path

import psutil

from stellarstack.protocol.events import NodeMetrics

__all__ = ["host_metrics", "prime_cpu_sampler"]


def prime_cpu_sampler() -> None:
    """Start the cpu measurement window (psutil's first reading is meaningless)."""
    psutil.cpu_percent(interval=None)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def host_metrics(data_dir: Path, containers: int) -> NodeMetrics:
    """Sample the host now (blocking; call it in a thread)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(_existing(data_dir)))
    network = psutil.net_io_counters()
    return NodeMetrics(
        cpu=min(psutil.cpu_percent(interval=None), 100.0),
        memory=memory.percent,
        memory_used=memory.total - memory.available,
        memory_total=memory.total,
        disk=disk.percent,
        disk_used=disk.used,
        disk_total=disk.total,
        containers=containers,
        network_rx=network.bytes_recv if network else 0,
        network_tx=network.bytes_sent if network else 0,
    )
