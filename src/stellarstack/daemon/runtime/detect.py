"""Choose the runtime: Docker when the engine answers (or is demanded), else local processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from stellarstack.daemon.runtime.base import Runtime
from stellarstack.daemon.runtime.docker import DockerRuntime
from stellarstack.daemon.runtime.errors import RuntimeUnavailableError
from stellarstack.daemon.runtime.install import DEFAULT_INSTALL_USER
from stellarstack.daemon.runtime.process import LOG_CAP, ProcessRuntime
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
    state_dir: Path | None = None,
    pull_stall_timeout: float = 120.0,
    install_user: str = DEFAULT_INSTALL_USER,
    process_log_bytes: int = LOG_CAP,
) -> Runtime:
    """The runtime for `mode`; `docker` raises RuntimeUnavailableError if no engine answers.

    `state_dir` is where the process runtime records its servers so that they outlive the
    daemon (without it they are stopped when the runtime closes).
    """
    if mode not in ("auto", "docker", "process"):
        raise ValueError(f"runtime must be auto, docker or process, not {mode!r}")

    def processes() -> ProcessRuntime:
        return ProcessRuntime(state_dir=state_dir, log_cap=process_log_bytes)

    if mode == "process":
        return processes()
    try:
        docker = DockerRuntime(
            docker_host,
            node_id=node_id,
            pull_stall_timeout=pull_stall_timeout,
            install_user=install_user,
        )
    except RuntimeUnavailableError:
        if mode == "docker":
            raise
        log.info("runtime.docker_absent", fallback="process")
        return processes()
    try:
        async with asyncio.timeout(probe_seconds):
            await docker.ping()
    except (RuntimeUnavailableError, TimeoutError) as exc:
        await docker.close()
        if mode == "docker":
            raise RuntimeUnavailableError(f"Docker Engine did not answer: {exc}") from exc
        log.info("runtime.docker_unreachable", error=str(exc), fallback="process")
        return processes()
    return docker
