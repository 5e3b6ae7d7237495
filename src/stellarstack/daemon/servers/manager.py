"""The ServerManager: every command about a server on this node goes through it.

Usage::

    manager = ServerManager(runtime, SpecStore(data_dir), publisher, consoles)
    await manager.reattach()                  # after a daemon (re)start
    await manager.create(spec)                # pull, install, configure, create, start, ready
    await manager.power(server_id, "restart")
    await manager.power(server_id, "start", spec=spec)   # the panel's current settings first
    await manager.delete(server_id)
    await manager.close()                     # stops watching; servers keep running

Deployment steps, each a `deployment.progress` event with the spec's deployment id:
pulling_image → installing → configuring → creating_container → starting → waiting_ready →
done. A deployment that fails before its container exists leaves nothing behind (container
removed; for a new server its files and spec too, the install log kept for reading); one
whose server exits on its first start keeps its container and files, so the console shows
why and the next start can be tried after a fix.

A start or restart may carry the panel's current ServerSpec. When it differs from the stored
one (`RUNTIME_FIELDS`: limits, env, command, ports, image, …) the new spec is stored and the
stopped server's container is recreated from it over its kept files, its config edits applied
again; a new image is pulled first (a failed pull fails the start, the old container stays).
An unchanged spec costs one comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from stellarstack.daemon.console import ConsoleHub, status_of
from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.events import EventPublisher
from stellarstack.daemon.runtime import (
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    Runtime,
)
from stellarstack.daemon.servers.configfiles import apply_edits
from stellarstack.daemon.servers.container import check_binaries, container_spec
from stellarstack.daemon.servers.install import InstallFailedError, pull_image, run_install
from stellarstack.daemon.servers.lifecycle import ServerEntry, ServerPower
from stellarstack.daemon.servers.reporter import Reporter
from stellarstack.daemon.servers.store import SpecStore
from stellarstack.logs import get_logger
from stellarstack.protocol.events import ServerStatus
from stellarstack.protocol.servers import ServerSpec

__all__ = [
    "RUNTIME_FIELDS",
    "SPEC_ONLY_FIELDS",
    "PowerAction",
    "ServerManager",
    "describe",
    "settings_differ",
]

log = get_logger(__name__)

PowerAction = Literal["start", "stop", "restart", "kill"]


SPEC_ONLY_FIELDS = frozenset({"deployment_id", "install", "start_on_completion"})
"""ServerSpec fields that do not change how an installed server runs."""
RUNTIME_FIELDS = tuple(name for name in ServerSpec.model_fields if name not in SPEC_ONLY_FIELDS)
"""ServerSpec fields whose change makes a start rebuild the server's container."""


def settings_differ(stored: ServerSpec | None, wanted: ServerSpec) -> bool:
    """Whether `wanted` runs the server differently from `stored` (None: no stored spec)."""
    if stored is None:
        return True
    return any(getattr(stored, name) != getattr(wanted, name) for name in RUNTIME_FIELDS)


async def _no_progress(fraction: float, message: str) -> None:
    """Pull progress of a start is not reported (it has no deployment to report to)."""


def describe(state: ContainerState) -> dict[str, Any]:
    """A command result about a server's state."""
    return {"serverId": state.server_id, "status": state.status.value, "exitCode": state.exit_code}


class ServerManager:
    """Installs and runs this node's servers; one power action at a time per server."""

    def __init__(
        self,
        runtime: Runtime,
        store: SpecStore,
        publisher: EventPublisher,
        consoles: ConsoleHub | None = None,
        *,
        stats_interval: float = 1.0,
        disk_interval: float = 30.0,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.reporter = Reporter(runtime, store, publisher, consoles)
        self._power = ServerPower(
            self.reporter, stats_interval=stats_interval, disk_interval=disk_interval
        )
        self._entries: dict[str, ServerEntry] = {}

    def entry(self, server_id: str) -> ServerEntry:
        """The tracked entry of a server (its stored spec loaded the first time)."""
        entry = self._entries.get(server_id)
        if entry is None:
            entry = ServerEntry(server_id, spec=self.store.load(server_id))
            self._entries[server_id] = entry
        return entry

    async def _exists(self, server_id: str) -> bool:
        try:
            await self.runtime.status(server_id)
        except ContainerNotFoundError:
            return False
        return True

    def _check(self, spec: ServerSpec) -> None:
        """Refuse a spec this node cannot run before any work is done."""
        container_spec(spec, self.store.volume_dir(spec.server_id))
        if self.runtime.name == "process":
            check_binaries(spec)

    async def create(self, spec: ServerSpec) -> dict[str, Any]:
        """Deploy a new server; fails if the server already exists on this node."""
        sid = spec.server_id
        self._check(spec)
        entry = self.entry(sid)
        async with entry.power_action("create"):
            if entry.spec is not None or await self._exists(sid):
                raise CommandFailedError(
                    f"server {sid} already exists on this node; reinstall or delete it instead"
                )
            return await self._deploy(entry, spec, new=True)

    async def reinstall(self, spec: ServerSpec) -> dict[str, Any]:
        """Stop, run the install again over the kept files, recreate the container."""
        self._check(spec)
        entry = self.entry(spec.server_id)
        async with entry.power_action("reinstall"):
            if await self._exists(spec.server_id):
                await self._power.halt(entry)
                await self.runtime.remove(spec.server_id)
            entry.stop_watching()
            # said once the stop is over, so the panel does not take that stop for the end
            await self.reporter.status(spec.server_id, ServerStatus.INSTALLING)
            return await self._deploy(entry, spec, new=False)

    async def _deploy(self, entry: ServerEntry, spec: ServerSpec, *, new: bool) -> dict[str, Any]:
        sid, report = spec.server_id, self.reporter
        volume = self.store.volume_dir(sid)
        entry.spec = spec
        self.store.save(spec)
        await asyncio.to_thread(volume.mkdir, parents=True, exist_ok=True)
        try:
            await self._prepare(spec, installing_reported=not new)
            await report.progress(sid, spec.deployment_id, "creating_container", 0.7)
            await self.runtime.create(container_spec(spec, volume))
        except BaseException as exc:
            await self._undo(entry, new=new)
            if isinstance(exc, InstallFailedError):
                await report.status(sid, ServerStatus.INSTALL_FAILED, reason=str(exc))
            await report.progress(sid, spec.deployment_id, "failed", 1.0, str(exc))
            raise
        if not spec.start_on_completion:
            await report.status(sid, ServerStatus.STOPPED)
            await report.progress(sid, spec.deployment_id, "done", 1.0, "installed")
            return describe(await self.runtime.status(sid))
        await report.progress(sid, spec.deployment_id, "starting", 0.8)
        if spec.ready is not None:
            await report.progress(sid, spec.deployment_id, "waiting_ready", 0.9, spec.ready.type)
        entry.crashes.reset()
        try:
            state = await self._power.boot(entry)
        except BaseException as exc:
            await report.progress(sid, spec.deployment_id, "failed", 1.0, str(exc))
            raise
        await report.progress(sid, spec.deployment_id, "done", 1.0, "running")
        return describe(state)

    async def _prepare(self, spec: ServerSpec, *, installing_reported: bool = False) -> None:
        """Pull images, run the install script, apply config edits."""
        sid, report, deployment = spec.server_id, self.reporter, spec.deployment_id

        async def pulled(fraction: float, message: str) -> None:
            await report.progress(sid, deployment, "pulling_image", 0.05 + 0.15 * fraction, message)

        await report.progress(sid, deployment, "pulling_image", 0.0, spec.image)
        await pull_image(self.runtime, spec.image, pulled)
        if spec.install is not None:
            await pull_image(self.runtime, spec.install.image, pulled)
            await report.progress(sid, deployment, "installing", 0.25)
            if not installing_reported:
                await report.status(sid, ServerStatus.INSTALLING)
            await run_install(
                self.runtime,
                spec,
                self.store.volume_dir(sid),
                self.store.install_log(sid),
                lambda text: report.install_line(sid, text),
            )
        await report.progress(sid, deployment, "configuring", 0.6)
        await asyncio.to_thread(apply_edits, self.store.volume_dir(sid), spec.config_files)

    async def _undo(self, entry: ServerEntry, *, new: bool) -> None:
        """Leave nothing half-made after a failed deployment."""
        sid = entry.server_id
        with contextlib.suppress(ContainerNotFoundError):
            await self.runtime.remove(sid)
        if new:
            await self.store.remove(sid, keep_log=True)
            entry.spec = None
        log.info("servers.deploy_undone", server_id=sid, new=new)

    async def power(
        self,
        server_id: str,
        action: PowerAction,
        *,
        signal: str | None = None,
        grace: float | None = None,
        spec: ServerSpec | None = None,
    ) -> dict[str, Any]:
        """Start, stop, restart or kill a server; refused while another action runs.

        `spec` (start, restart): the settings to run with; applied before the boot when they
        differ from the stored ones (a running server keeps running as it is).
        """
        entry = self.entry(server_id)
        async with entry.power_action(action):
            entry.cancel_restart()
            if action == "kill":
                await self._power.kill(entry, signal=signal)
                return {"serverId": server_id, "signal": signal or "SIGKILL"}
            if action in ("stop", "restart"):
                state = await self._power.halt(entry, signal=signal, grace=grace)
                if action == "stop":
                    return describe(state)
            state = await self.runtime.status(server_id)
            if state.running:
                return describe(state)
            if spec is not None and settings_differ(entry.spec, spec):
                await self._apply_settings(entry, spec)
            entry.crashes.reset()
            return describe(await self._power.boot(entry))

    async def _apply_settings(self, entry: ServerEntry, wanted: ServerSpec) -> None:
        """Store `wanted` and rebuild the stopped server's container from it (files kept)."""
        sid, old = entry.server_id, entry.spec
        self._check(wanted)
        spec = wanted.model_copy(
            update={
                "deployment_id": old.deployment_id if old is not None else None,
                "install": old.install if old is not None else wanted.install,
            }
        )
        if old is None or old.image != spec.image:
            try:
                await pull_image(self.runtime, spec.image, _no_progress)
            except CommandFailedError as exc:
                raise CommandFailedError(
                    f"server {sid} was not started: {exc}; it keeps its previous image and settings"
                ) from exc
        volume = self.store.volume_dir(sid)
        wanted_container = container_spec(spec, volume)
        if old is None or container_spec(old, volume) != wanted_container:
            await self._rebuild(sid, wanted_container, old)
        await asyncio.to_thread(apply_edits, volume, spec.config_files)
        entry.spec = spec
        self.store.save(spec)
        log.info("servers.settings_applied", server_id=sid, image=spec.image)

    async def _rebuild(self, sid: str, wanted: ContainerSpec, old: ServerSpec | None) -> None:
        """Replace the server's container by `wanted`; put the old one back if that fails."""
        volume = self.store.volume_dir(sid)
        with contextlib.suppress(ContainerNotFoundError):
            await self.runtime.remove(sid)
        try:
            await self.runtime.create(wanted)
        except BaseException:
            if old is not None:
                with contextlib.suppress(ContainerRuntimeError, CommandFailedError):
                    await self.runtime.create(container_spec(old, volume))
            raise

    async def delete(self, server_id: str, *, keep_files: bool = False) -> dict[str, Any]:
        """Remove the container, the spec and (unless `keep_files`) the server's files."""
        entry = self.entry(server_id)
        async with entry.power_action("delete"):
            entry.expected_exit = True
            entry.stop_watching()
            with contextlib.suppress(ContainerNotFoundError):
                await self.runtime.remove(server_id)
            if self.reporter.consoles is not None:
                await self.reporter.consoles.unregister(server_id)
            await self.store.remove(server_id, keep_files=keep_files)
        self._entries.pop(server_id, None)
        log.info("servers.deleted", server_id=server_id, keep_files=keep_files)
        return {"serverId": server_id, "deleted": True, "filesKept": keep_files}

    async def reattach(self) -> None:
        """Reconcile stored specs with the runtime after a daemon start."""
        specs = {spec.server_id: spec for spec in self.store.all()}
        managed = {state.server_id: state for state in await self.runtime.list_managed()}
        for sid in managed.keys() - specs.keys():
            log.info("servers.unknown_container", server_id=sid, hint="left alone: no spec")
        for sid, spec in specs.items():
            entry = self.entry(sid)
            entry.spec = spec
            if sid not in managed:
                await self._recreate(spec)
                continue
            state = await self.runtime.status(sid)
            if state.running:
                await self.reporter.register_console(sid)
                self._power.follow(entry)
                await self.reporter.status(sid, ServerStatus.RUNNING)
            elif status_of(state) == "crashed":
                await self.reporter.status(
                    sid,
                    ServerStatus.CRASHED,
                    exit_code=state.exit_code,
                    reason="exited while the daemon was down",
                    oom_killed=state.oom_killed,
                )
            else:
                await self.reporter.status(sid, ServerStatus.STOPPED, exit_code=state.exit_code)
        log.info("servers.reattached", servers=len(specs), containers=len(managed))

    async def _recreate(self, spec: ServerSpec) -> None:
        """Give a stored server its container again, over its kept files, stopped.

        The process runtime forgets its servers when the daemon restarts, and a container
        may have been removed by hand: neither needs a reinstall.
        """
        sid = spec.server_id
        log.info("servers.container_recreated", server_id=sid)
        try:
            await self.runtime.create(container_spec(spec, self.store.volume_dir(sid)))
        except (CommandFailedError, ContainerRuntimeError) as exc:
            await self.reporter.alert(
                sid, f"server {sid} has no container and cannot get one: {exc}"
            )
            return
        await self.reporter.status(sid, ServerStatus.STOPPED, reason="the daemon restarted")

    async def close(self) -> None:
        """Stop watching every server (their containers keep running)."""
        tasks = []
        for entry in self._entries.values():
            tasks += [t for t in (entry.watcher, entry.stats, entry.restart) if t is not None]
            entry.stop_watching()
        await asyncio.gather(*tasks, return_exceptions=True)
