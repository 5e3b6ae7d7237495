"""Engine API bodies for the Docker runtime: the create body of a server; stats as ResourceStats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stellarstack.daemon.runtime.base import ContainerSpec, ResourceStats

__all__ = ["DROPPED_CAPS", "container_config", "resource_stats"]

# Capabilities a game never needs; dropping them narrows what a compromised server can do.
DROPPED_CAPS = [
    "setpcap", "mknod", "audit_write", "net_raw", "dac_override",
    "fowner", "fsetid", "net_bind_service", "sys_chroot", "setfcap",
]  # fmt: skip


def container_config(spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
    """The Engine API create body for a spec: limits, loopback-or-given port bindings, labels."""
    ports = {f"{p.target_port}/{p.protocol}": p for p in spec.ports}
    bindings: dict[str, list[dict[str, str]]] = {}
    for key, p in ports.items():
        bindings.setdefault(key, []).append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
    host_config: dict[str, Any] = {
        "PortBindings": bindings,
        "RestartPolicy": {"Name": "no"},
        "Init": True,
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges"],
        "CapDrop": DROPPED_CAPS,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "5m", "max-file": "2"}},
    }
    if spec.memory_limit is not None:
        host_config["Memory"] = spec.memory_limit
        host_config["MemorySwap"] = spec.memory_limit  # no swap on top of the limit
    if spec.cpu_limit is not None:
        host_config["NanoCpus"] = int(spec.cpu_limit * 1_000_000_000)
    if spec.pids_limit is not None:
        host_config["PidsLimit"] = spec.pids_limit
    if spec.volume_dir is not None:
        host_config["Binds"] = [f"{spec.volume_dir}:{spec.working_dir}"]
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{name}={value}" for name, value in spec.env.items()],
        "Labels": {**spec.labels, **labels},
        "WorkingDir": spec.working_dir,
        "ExposedPorts": {key: {} for key in ports},
        "OpenStdin": True,
        "StdinOnce": False,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "HostConfig": host_config,
    }
    if spec.command:
        config["Cmd"] = list(spec.command)
    if spec.user:
        config["User"] = spec.user
    return config


def resource_stats(sample: dict[str, Any]) -> ResourceStats:
    """Convert one Engine API stats sample (cgroup v1 or v2) to ResourceStats."""
    cpu, pre = sample.get("cpu_stats", {}), sample.get("precpu_stats", {})
    cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1])
    cpu_percent = cpu_delta / system_delta * online * 100 if system_delta > 0 else 0.0
    memory = sample.get("memory_stats", {})
    details = memory.get("stats", {})
    cache: Callable[[str], int] = lambda key: int(details.get(key, 0))  # noqa: E731
    used = memory.get("usage", 0) - (cache("inactive_file") or cache("total_inactive_file"))
    networks = sample.get("networks") or {}
    return ResourceStats(
        cpu_percent=max(cpu_percent, 0.0),
        memory_bytes=max(int(used), 0),
        memory_limit_bytes=int(memory.get("limit", 0)),
        network_rx_bytes=sum(int(n.get("rx_bytes", 0)) for n in networks.values()),
        network_tx_bytes=sum(int(n.get("tx_bytes", 0)) for n in networks.values()),
        pids=int(sample.get("pids_stats", {}).get("current", 0)),
    )
