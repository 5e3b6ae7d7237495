"""The Docker runtime: one container per server through the Engine API 1.41 (aiodocker)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from stellarstack.daemon.runtime.base import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    OutputLine,
    OutputStream,
    PullProgress,
    ResourceStats,
    Runtime,
)
from stellarstack.daemon.runtime.docker_config import container_config, resource_stats
from stellarstack.daemon.runtime.errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ImagePullError,
    InvalidSpecError,
    RuntimeUnavailableError,
)
from stellarstack.daemon.runtime.install import (
    DEFAULT_INSTALL_USER,
    LABEL_INSTALL_FOR,
    LABEL_ROLE,
    check_timeout,
    install_config,
    install_container_name,
    own_directory,
    remove_container,
    unprivileged_user,
)
from stellarstack.daemon.runtime.output import MultiplexedOutput
from stellarstack.daemon.runtime.pull import check_image_reference, pull_image
from stellarstack.logs import get_logger

__all__ = [
    "API_VERSION",
    "LABEL_MANAGED",
    "LABEL_NODE_ID",
    "LABEL_SERVER_ID",
    "DockerRuntime",
    "container_config",
    "resource_stats",
]

API_VERSION = "v1.41"
LABEL_MANAGED = "stellarstack.managed"
LABEL_SERVER_ID = "stellarstack.server_id"
LABEL_NODE_ID = "stellarstack.node_id"


log = get_logger(__name__)


@contextlib.asynccontextmanager
async def _translated(server_id: str) -> AsyncIterator[None]:
    """Turn aiodocker and connection errors into runtime errors."""
    try:
        yield
    except aiodocker.DockerError as exc:
        detail = f"{server_id}: {exc.message}"
        if exc.status == 404:
            raise ContainerNotFoundError(detail) from exc
        if exc.status in (304, 409):
            raise ContainerConflictError(detail) from exc
        raise ContainerRuntimeError(f"docker error {exc.status}: {detail}") from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise RuntimeUnavailableError(f"Docker Engine unreachable: {exc}") from exc


def _parse_time(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    # Docker writes RFC 3339 with nanoseconds; Python parses at most microseconds.
    head, _, frac = value.rstrip("Z").partition(".")
    micro = frac[:6].ljust(6, "0") if frac else "000000"
    return datetime.fromisoformat(f"{head}.{micro}+00:00")


def _status(value: str) -> ContainerStatus:
    try:
        return ContainerStatus(value)
    except ValueError:  # "removing" and future states
        return ContainerStatus.DEAD


def _carries_input(stream: Stream) -> bool:
    """True while a kept stdin connection is open (the engine closes it when the run ends)."""
    response = stream._resp  # aiodocker exposes no state for this
    transport = response.connection.transport if response and response.connection else None
    return transport is not None and not transport.is_closing()


class DockerRuntime(Runtime):
    """Servers as Docker containers named `stellar-<server id>` (create in a running loop)."""

    name: ClassVar[str] = "docker"

    def __init__(
        self,
        host: str | None = None,
        *,
        node_id: str | None = None,
        pull_stall_timeout: float = 120.0,
        install_user: str = DEFAULT_INSTALL_USER,
    ) -> None:
        try:
            self._docker = aiodocker.Docker(url=host, api_version=API_VERSION)
        except (ValueError, OSError, AssertionError) as exc:
            # aiodocker asserts when it finds no socket at all (no Docker installed).
            raise RuntimeUnavailableError(f"no Docker Engine configured: {exc!r}") from exc
        self._node_id = node_id
        self._pull_stall_timeout = pull_stall_timeout
        self._install_user = install_user
        self._stdin: dict[str, Stream] = {}
        self._stdin_lock = asyncio.Lock()

    @property
    def node_id(self) -> str | None:
        """The node whose containers this runtime manages (None: every managed container)."""
        return self._node_id

    def _labels(self, server_id: str) -> dict[str, str]:
        labels = {LABEL_MANAGED: "true", LABEL_SERVER_ID: server_id}
        if self._node_id:
            labels[LABEL_NODE_ID] = self._node_id
        return labels

    @staticmethod
    def container_name(server_id: str) -> str:
        """The container name used for a server."""
        return f"stellar-{server_id}"

    async def _container(self, server_id: str) -> DockerContainer:
        async with _translated(server_id):
            return await self._docker.containers.get(self.container_name(server_id))

    async def ping(self) -> None:
        """Check the engine answers; raise RuntimeUnavailableError otherwise."""
        try:
            async with _translated("-"):
                await self._docker.version()
        except ContainerRuntimeError as exc:
            raise RuntimeUnavailableError(str(exc)) from exc

    async def pull(self, image: str, on_progress: PullProgress | None = None) -> None:
        """Pull `image` unless present, reporting progress; ImagePullError when it cannot."""
        await pull_image(self._docker, image, on_progress, stall_timeout=self._pull_stall_timeout)

    async def run_once(
        self,
        spec: ContainerSpec,
        *,
        timeout: float,  # noqa: ASYNC109 - the install's own budget, enforced inside
        on_output: Callable[[OutputLine], Awaitable[None]] | None = None,
    ) -> int:
        """Run the install container to its end (unprivileged, `/mnt/server`), always remove it."""
        check_timeout(timeout)
        check_image_reference(spec.image)
        uid, gid = unprivileged_user(spec.user, self._install_user)
        labels = {LABEL_MANAGED: "true", LABEL_ROLE: "install", LABEL_INSTALL_FOR: spec.server_id}
        if self._node_id:
            labels[LABEL_NODE_ID] = self._node_id
        config = install_config(spec, labels, uid, gid)
        assert spec.volume_dir is not None  # install_config checked it
        await asyncio.to_thread(own_directory, spec.volume_dir, uid, gid)
        name = install_container_name(spec.server_id)
        async with _translated(spec.server_id):
            await remove_container(self._docker, name)  # a leftover of an interrupted install
        log.info("runtime.install_started", server_id=spec.server_id, image=spec.image)
        # Created outside the budget and shielded: a create cut short by a timeout or a
        # cancellation could land on the engine after the cleanup and leave an orphan.
        creating = asyncio.ensure_future(self._create(config, name, spec))
        try:
            container = await asyncio.shield(creating)
            async with asyncio.timeout(timeout):
                code = await self._run_to_end(container, spec.server_id, on_output)
        except TimeoutError:
            log.warning("runtime.install_timed_out", server_id=spec.server_id, timeout=timeout)
            raise TimeoutError(
                f"{spec.server_id}: the install did not finish within {timeout:g} s"
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await creating
            async with _translated(spec.server_id):
                await remove_container(self._docker, name)
        log.info("runtime.install_finished", server_id=spec.server_id, code=code)
        return code

    async def _create(
        self, config: dict[str, Any], name: str, spec: ContainerSpec
    ) -> DockerContainer:
        try:
            async with _translated(spec.server_id):
                return await self._docker.containers.create(config, name=name)
        except ContainerNotFoundError as exc:  # the engine's 404 on create: no such image
            raise ImagePullError(
                f"image {spec.image} is not present on this node (pull it first)"
            ) from exc

    async def _run_to_end(
        self,
        container: DockerContainer,
        server_id: str,
        on_output: Callable[[OutputLine], Awaitable[None]] | None,
    ) -> int:
        stream = container.attach(stdout=True, stderr=True, logs=True)
        async with _translated(server_id):
            await stream.__aenter__()
            async with MultiplexedOutput(stream) as output:
                await container.start()
                async for line in output:
                    if on_output is not None:
                        await on_output(line)
            result = await container.wait()
        return int(result.get("StatusCode", -1))

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Create the container (stopped) with the spec's limits, ports, volume and labels.

        Without a `user` in the spec it runs as the install user, owner of the server's files,
        so what the install wrote stays writable (root in the container has no DAC override).
        """
        check_image_reference(spec.image)
        if spec.user is None:
            spec = dataclasses.replace(spec, user=self._install_user)
        if spec.volume_dir is not None:
            await asyncio.to_thread(spec.volume_dir.mkdir, parents=True, exist_ok=True)
            with contextlib.suppress(InvalidSpecError):  # root or a named user: left as they are
                uid, gid = unprivileged_user(spec.user)
                await asyncio.to_thread(own_directory, spec.volume_dir, uid, gid)
        config = container_config(spec, self._labels(spec.server_id))
        await self._create(config, self.container_name(spec.server_id), spec)
        return await self.status(spec.server_id)

    async def start(self, server_id: str) -> None:
        """Start the container (input of the new run goes over a new connection)."""
        await self._forget_input(server_id)  # the engine may keep the old run's one open
        container = await self._container(server_id)
        async with _translated(server_id):
            await container.start()

    async def stop(
        self, server_id: str, *, signal: str = "SIGTERM", grace: float = 30.0
    ) -> ContainerState:
        """Send `signal`, wait up to `grace` seconds, then SIGKILL."""
        # Engine API 1.41 has no signal on /stop, so stop is kill(signal) + wait + kill.
        with contextlib.suppress(ContainerConflictError):
            await self.kill(server_id, signal=signal)
        try:
            async with asyncio.timeout(grace):
                return await self.wait(server_id)
        except TimeoutError:
            with contextlib.suppress(ContainerConflictError):
                await self.kill(server_id, signal="SIGKILL")
            return await self.wait(server_id)

    async def kill(self, server_id: str, *, signal: str = "SIGKILL") -> None:
        """Send a signal to the container's main process."""
        container = await self._container(server_id)
        async with _translated(server_id):
            await container.kill(signal=signal)

    async def remove(self, server_id: str) -> None:
        """Force-remove the container (the bind-mounted files stay)."""
        await self._forget_input(server_id)
        container = await self._container(server_id)
        async with _translated(server_id):
            await container.delete(force=True, v=True)

    async def status(self, server_id: str) -> ContainerState:
        """Inspect the container."""
        container = await self._container(server_id)
        async with _translated(server_id):
            info = await container.show()
        state = info["State"]
        status = _status(state["Status"])
        ended = status in (ContainerStatus.EXITED, ContainerStatus.DEAD)
        return ContainerState(
            server_id=server_id,
            status=status,
            container_id=info["Id"],
            exit_code=state.get("ExitCode") if ended else None,
            started_at=_parse_time(state.get("StartedAt")),
            finished_at=_parse_time(state.get("FinishedAt")),
            oom_killed=bool(state.get("OOMKilled")),
        )

    async def wait(self, server_id: str) -> ContainerState:
        """Wait until the container is not running."""
        container = await self._container(server_id)
        async with _translated(server_id):
            await container.wait(condition="not-running")
        return await self.status(server_id)

    async def attach(self, server_id: str) -> OutputStream:
        """Attach to stdout/stderr; the connection is open when this returns."""
        container = await self._container(server_id)
        stream = container.attach(stdout=True, stderr=True, logs=False)
        async with _translated(server_id):
            await stream.__aenter__()
        return MultiplexedOutput(stream)

    async def logs(self, server_id: str, *, tail: int = 100) -> list[OutputLine]:
        """The last `tail` lines, stdout and stderr merged in time order."""
        container = await self._container(server_id)
        stamped: list[tuple[str, OutputLine]] = []
        async with _translated(server_id):
            for name in ("stdout", "stderr"):
                chunks = await container.log(
                    **{name: True}, tail=str(tail), timestamps=True, follow=False
                )
                for line in "".join(chunks).splitlines():
                    stamp, _, text = line.partition(" ")
                    stamped.append((stamp, OutputLine(name, text)))
        stamped.sort(key=lambda item: item[0])
        return [line for _, line in stamped[-tail:]] if tail > 0 else []

    async def send_input(self, server_id: str, data: str) -> None:
        """Write to the container's stdin over a kept attach connection (anew once it closed)."""
        async with self._stdin_lock:
            stream = self._stdin.pop(server_id, None)
            if stream is None or not _carries_input(stream):
                if stream is not None:
                    await stream.close()
                container = await self._container(server_id)
                stream = container.attach(stdin=True)
                async with _translated(server_id):
                    await stream.__aenter__()
            self._stdin[server_id] = stream
        try:
            async with _translated(server_id):
                await stream.write_in(data.encode())
        except BaseException:
            if self._stdin.get(server_id) is stream:
                del self._stdin[server_id]
            await stream.close()
            raise

    async def _forget_input(self, server_id: str) -> None:
        if (stream := self._stdin.pop(server_id, None)) is not None:
            await stream.close()

    async def stats(self, server_id: str) -> ResourceStats:
        """One stats sample (the engine takes about a second to measure cpu)."""
        container = await self._container(server_id)
        async with _translated(server_id):
            samples = await container.stats(stream=False)
        if not samples:
            raise ContainerConflictError(f"{server_id}: no stats (is it running?)")
        return resource_stats(samples[0])

    async def list_managed(self) -> list[ContainerState]:
        """Every container labelled as ours (and this node's, when a node id is known)."""
        wanted = [LABEL_SERVER_ID]
        if self._node_id:
            wanted.append(f"{LABEL_NODE_ID}={self._node_id}")
        async with _translated("-"):
            found = await self._docker.containers.list(
                all=True, filters=json.dumps({"label": wanted})
            )
        return [
            ContainerState(
                server_id=c["Labels"][LABEL_SERVER_ID],
                status=_status(c["State"]),
                container_id=c.id,
            )
            for c in found
        ]

    async def close(self) -> None:
        """Close the HTTP client; containers keep running."""
        for server_id in list(self._stdin):
            await self._forget_input(server_id)
        await self._docker.close()
