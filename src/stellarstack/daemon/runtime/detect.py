"""Choose the runtime: Docker when the engine answers (or is demanded), else local processes."""

from __future__ import annotations

import asyncio
from typing import Literal

from stellarstack.daemon.runtime.base import Runtime
from stellarstack.daemon.runtime.docker import DockerRuntime
from stellarstack.daemon.runtime.errors import RuntimeUnavailableError
from stellarstack.daemon.runtime.process import ProcessRuntime
from stellarstack.logs import get_logger

__all__ = ["RuntimeMode", "detect_runtime"]

log = get_logger(__name__)

RuntimeMode = Literal["auto", "docker", "process"]


async def detect_runtime(
    mode: str = "auto",
    *,
    docker_host: str | None = None,
    node_id: str | None = None,
    probe_seconds: float = 3.0,
) -> Runtime:
    """The runtime for `mode`; `docker` raises RuntimeUnavailableError if no engine answers."""
    if mode not in ("auto", "docker", "process"):
        raise ValueError(f"runtime must be auto, docker or process, not {mode!r}")
    if mode == "process":
        return ProcessRuntime()
    try:
        docker = DockerRuntime(docker_host, node_id=node_id)
    except RuntimeUnavailableError:
        if mode == "docker":
            raise
        log.info("runtime.docker_absent", fallback="process")
        return ProcessRuntime()
    try:
        async with asyncio.timeout(probe_seconds):
            await docker.ping()
    except (RuntimeUnavailableError, TimeoutError) as exc:
        await docker.close()
        if mode == "docker":
            raise RuntimeUnavailableError(f"Docker Engine did not answer: {exc}") from exc
        log.info("runtime.docker_unreachable", error=str(exc), fallback="process")
        return ProcessRuntime()
    return docker
