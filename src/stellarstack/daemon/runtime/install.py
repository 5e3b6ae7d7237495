"""One-off install containers: an install script run unprivileged beside (not as) the server.

The container is named `stellar-install-<server id>` and labelled `stellarstack.role=install`
without the server-id label, so `list_managed` never mistakes it for a server. It runs as a
non-root user with every capability dropped, no-new-privileges, memory and process limits,
and the server directory mounted at `/mnt/server`. It is always removed: after it exits,
when its budget runs out (killed first, then TimeoutError), and when the caller is cancelled.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker

from stellarstack.daemon.runtime.base import ContainerSpec, OutputLine
from stellarstack.daemon.runtime.errors import InvalidSpecError
from stellarstack.logs import get_logger

__all__ = [
    "DEFAULT_INSTALL_USER",
    "INSTALL_MEMORY",
    "INSTALL_MOUNT",
    "INSTALL_PIDS",
    "LABEL_INSTALL_FOR",
    "LABEL_ROLE",
    "check_timeout",
    "install_config",
    "install_container_name",
    "own_directory",
    "remove_container",
    "unprivileged_user",
]

log = get_logger(__name__)

LABEL_ROLE = "stellarstack.role"
LABEL_INSTALL_FOR = "stellarstack.install_for"
INSTALL_MOUNT = "/mnt/server"
DEFAULT_INSTALL_USER = "1000:1000"
INSTALL_MEMORY = 1 << 30
"""Memory (and memory+swap) of an install container whose spec gives no limit."""
INSTALL_PIDS = 512
"""Process limit of an install container whose spec gives none."""

OutputSink = Callable[[OutputLine], Awaitable[None]]


def install_container_name(server_id: str) -> str:
    """The container name of a server's install step."""
    return f"stellar-install-{server_id}"


def check_timeout(timeout: float) -> None:
    """InvalidSpecError unless `timeout` is a positive, finite number of seconds."""
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise InvalidSpecError(f"an install timeout must be a positive number, not {timeout!r}")


def unprivileged_user(user: str | None, default: str = DEFAULT_INSTALL_USER) -> tuple[int, int]:
    """The numeric (uid, gid) an install runs as; InvalidSpecError for root or non-numeric."""
    value = user or default
    uid_text, _, gid_text = value.partition(":")
    if not uid_text.isdigit() or not (gid_text or uid_text).isdigit():
        raise InvalidSpecError(f"an install user must be numeric uid[:gid], not {value!r}")
    uid, gid = int(uid_text), int(gid_text or uid_text)
    if uid == 0 or gid == 0 or uid > 2**31 or gid > 2**31:
        raise InvalidSpecError(f"an install must not run as root or an absurd id ({value!r})")
    return uid, gid


def own_directory(directory: Path, uid: int, gid: int) -> None:
    """Create `directory` and hand it to uid:gid (when allowed) so the install can write there."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory.stat().st_uid, directory.stat().st_gid) == (uid, gid):
        return
    try:
        os.chown(directory, uid, gid)
        for root, dirs, files in os.walk(directory):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    except PermissionError:
        log.warning("runtime.install_chown_refused", directory=str(directory), uid=uid)


def install_config(
    spec: ContainerSpec, labels: dict[str, str], uid: int, gid: int
) -> dict[str, Any]:
    """The Engine API create body of an install container."""
    if not spec.image or not spec.command:
        raise InvalidSpecError("an install step needs an image and a command")
    if spec.volume_dir is None:
        raise InvalidSpecError("an install step needs the server directory (volume_dir)")
    memory = spec.memory_limit or INSTALL_MEMORY
    host_config: dict[str, Any] = {
        "Binds": [f"{spec.volume_dir}:{INSTALL_MOUNT}"],
        "RestartPolicy": {"Name": "no"},
        "Init": True,
        "Privileged": False,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Memory": memory,
        "MemorySwap": memory,
        "PidsLimit": spec.pids_limit or INSTALL_PIDS,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "5m", "max-file": "1"}},
    }
    if spec.cpu_limit is not None:
        host_config["NanoCpus"] = int(spec.cpu_limit * 1_000_000_000)
    return {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Env": [f"{name}={value}" for name, value in spec.env.items()],
        "Labels": {**spec.labels, **labels},
        "WorkingDir": INSTALL_MOUNT,
        "User": f"{uid}:{gid}",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "OpenStdin": False,
        "HostConfig": host_config,
    }


async def remove_container(docker: aiodocker.Docker, name: str) -> None:
    """Force-remove a container by name; a missing one is fine."""
    with contextlib.suppress(aiodocker.DockerError):
        container = await docker.containers.get(name)
        await container.delete(force=True, v=True)
