"""The install step of a deployment: pull images and run the install script once.

The script runs in its own container (never privileged, the runtime's dropped capabilities
and the server's memory and process limits) with the server's files mounted at
`/mnt/server`; its output goes line by line to `install.log` and to the console's viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.runtime import (
    ContainerRuntimeError,
    ContainerSpec,
    ImagePullError,
    OutputLine,
    PullProgress,
    Runtime,
)
from stellarstack.logs import get_logger
from stellarstack.protocol.servers import ServerSpec

__all__ = ["INSTALL_MOUNT", "InstallFailedError", "pull_image", "run_install"]

log = get_logger(__name__)

INSTALL_MOUNT = "/mnt/server"
"""Where the install container sees the server's files (as Pterodactyl eggs expect)."""
TAIL_LINES = 20
"""Lines of install output quoted in the failure reason."""
LOG_LIMIT = 8 << 20
"""Bytes of install output kept in install.log; past it only the tail is kept (in memory)."""

OnLine = Callable[[str], Awaitable[None]]


class InstallFailedError(CommandFailedError):
    """The install script failed; the message ends with the tail of its output."""


async def pull_image(runtime: Runtime, image: str, on_progress: PullProgress) -> None:
    """Make `image` available; a runtime without pulls (process) counts it as present."""
    try:
        await runtime.pull(image, on_progress)
    except NotImplementedError:
        log.info("servers.pull_unsupported", runtime=runtime.name, image=image)
    except ImagePullError as exc:
        raise CommandFailedError(f"cannot pull image {image}: {exc}") from exc


def install_container(spec: ServerSpec, volume_dir: Path) -> ContainerSpec:
    """The one-off container that runs the install script."""
    assert spec.install is not None
    step = spec.install
    return ContainerSpec(
        server_id=f"{spec.server_id[:100]}.install",
        image=step.image,
        command=(step.entrypoint, "-c", step.script),
        env={**spec.env, "SERVER_MEMORY": str(spec.limits.memory_mb)},
        memory_limit=spec.limits.memory_mb << 20,
        pids_limit=spec.limits.pids,
        volume_dir=volume_dir,
        working_dir=INSTALL_MOUNT,
        labels={"stellarstack.install": "true"},
    )


async def _run_by_hand(
    runtime: Runtime,
    container: ContainerSpec,
    timeout: float,  # noqa: ASYNC109 - the install's own budget
    on_output: Callable[[OutputLine], Awaitable[None]],
) -> int:
    """run_once for runtimes that lack it: create, attach, start, wait, remove."""
    sid = container.server_id
    with contextlib.suppress(ContainerRuntimeError):
        await runtime.remove(sid)  # a leftover of an interrupted install
    await runtime.create(container)
    try:
        output = await runtime.attach(sid)
        async with output:
            await runtime.start(sid)
            async with asyncio.timeout(timeout):
                async for line in output:
                    await on_output(line)
                state = await runtime.wait(sid)
        return state.exit_code or 0
    finally:
        with contextlib.suppress(ContainerRuntimeError):
            await runtime.remove(sid)


async def run_install(
    runtime: Runtime,
    spec: ServerSpec,
    volume_dir: Path,
    log_path: Path,
    on_line: OnLine,
    *,
    log_limit: int = LOG_LIMIT,
) -> None:
    """Run the install script to its end; InstallFailedError with its output's tail if not."""
    step = spec.install
    if step is None:
        return
    container = install_container(spec, volume_dir)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with log_path.open("w", encoding="utf-8") as handle:
        written = 0

        async def on_output(line: OutputLine) -> None:
            nonlocal written
            tail.append(line.text)
            if written <= log_limit:
                text = line.text + "\n"
                written += len(text)
                if written > log_limit:
                    text = f"[install.log cut at {log_limit} bytes; the rest is not kept]\n"
                handle.write(text)
            await on_line(line.text)

        try:
            try:
                code = await runtime.run_once(container, timeout=step.timeout, on_output=on_output)
            except NotImplementedError:
                code = await _run_by_hand(runtime, container, step.timeout, on_output)
        except TimeoutError:
            raise InstallFailedError(
                f"the install script ran longer than {step.timeout:g}s and was stopped"
                + _quote(tail)
            ) from None
        except ContainerRuntimeError as exc:
            raise InstallFailedError(f"the install could not run: {exc}") from exc
    log.info("servers.install_finished", server_id=spec.server_id, exit_code=code)
    if code != 0:
        raise InstallFailedError(f"the install script failed (exit code {code})" + _quote(tail))


def _quote(tail: deque[str]) -> str:
    if not tail:
        return ""
    return ":\n" + "\n".join(line[:180] for line in tail)
