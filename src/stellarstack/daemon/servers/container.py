"""From the panel's `ServerSpec` to the runtime's `ContainerSpec` (checked before any work)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.runtime import ContainerSpec, InvalidSpecError, PortBinding
from stellarstack.daemon.runtime.process_exec import server_path
from stellarstack.protocol.servers import ServerSpec

__all__ = ["LABEL_DEPLOYMENT", "check_binaries", "container_spec", "server_env"]

LABEL_DEPLOYMENT = "stellarstack.deployment_id"
_BINARY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def check_binaries(spec: ServerSpec) -> None:
    """On the process runtime: refuse a spec whose programs are not on this node's PATH."""
    if not spec.binaries:
        raise CommandFailedError(
            f"server {spec.server_id} needs Docker: its blueprint names no programs to run "
            "without it, and this node uses the process runtime"
        )
    bad = [name for name in spec.binaries if _BINARY.fullmatch(name) is None]
    if bad:
        raise CommandFailedError(f"program names must be plain names, not {bad[0]!r}")
    path = server_path()  # what the process runtime will search
    missing = [name for name in spec.binaries if shutil.which(name, path=path) is None]
    if missing:
        raise CommandFailedError(
            f"server {spec.server_id} needs {', '.join(missing)} on this node's PATH; "
            "install it (or use a Docker node)"
        )


def _mount_path(value: str) -> str:
    """The container path of the server files; refuse what could alter the bind itself."""
    path = PurePosixPath(value)
    if ".." in path.parts or str(path) == "/" or any(c in value for c in ":,\n\r\t"):
        raise CommandFailedError(
            f"mount path {value!r} must be an absolute folder path other than / "
            "without '..', ':' or ','"
        )
    return str(path)


def server_env(spec: ServerSpec) -> dict[str, str]:
    """The environment of the main process: the defaults eggs expect, then the spec's own."""
    primary = next((p for p in spec.ports if p.primary), spec.ports[0] if spec.ports else None)
    env = {"SERVER_MEMORY": str(spec.limits.memory_mb), "P_SERVER_UUID": spec.server_id}
    if primary is not None:
        env |= {"SERVER_IP": primary.ip, "SERVER_PORT": str(primary.port)}
    return env | spec.env


def container_spec(spec: ServerSpec, volume_dir: Path) -> ContainerSpec:
    """The container of a server: limits, ports, environment, files mounted at mount_path."""
    try:
        return ContainerSpec(
            server_id=spec.server_id,
            image=spec.image,
            command=tuple(spec.command),
            env=server_env(spec),
            memory_limit=spec.limits.memory_mb << 20,
            cpu_limit=spec.limits.cpu / 100 if spec.limits.cpu else None,
            pids_limit=spec.limits.pids,
            ports=tuple(
                PortBinding(host_ip=p.ip, host_port=p.port, protocol=p.protocol) for p in spec.ports
            ),
            volume_dir=volume_dir,
            labels={LABEL_DEPLOYMENT: spec.deployment_id or ""},
            working_dir=_mount_path(spec.mount_path),
        )
    except InvalidSpecError as exc:
        raise CommandFailedError(f"invalid server spec: {exc}") from exc
