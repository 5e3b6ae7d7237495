"""What a process-runtime instance holds about one server: its record, readers and wake-ups."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from stellarstack.daemon.runtime.base import ContainerSpec, ContainerState, ContainerStatus
from stellarstack.daemon.runtime.process_exec import ProcessProbes
from stellarstack.daemon.runtime.process_files import RunRecord, ServerFiles
from stellarstack.daemon.runtime.subscribers import Subscribers

__all__ = ["ProcessServer", "leads_its_session", "pause"]


@dataclass(eq=False)
class ProcessServer:
    """What this runtime instance knows about one server."""

    spec: ContainerSpec
    files: ServerFiles
    record: RunRecord = field(default_factory=RunRecord)
    subscribers: Subscribers = field(default_factory=Subscribers)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None
    probes: ProcessProbes = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lost: bool = False

    def refresh(self) -> None:
        """Re-read the run record; a supervisor that vanished without one marks the run lost."""
        self.record = self.files.record()
        pid = self.record.supervisor_pid
        self.lost = bool(pid and not self.record.ended and not self.files.supervisor_alive(pid))
        if self.running:
            self.stopped.clear()
        else:
            self.stopped.set()

    @property
    def running(self) -> bool:
        """True while the supervisor reports the server's process alive."""
        return self.record.pid is not None and not self.record.ended and not self.lost

    def state(self) -> ContainerState:
        """A snapshot for callers."""
        record = self.record
        if self.running:
            status = ContainerStatus.RUNNING
        elif self.lost:
            status = ContainerStatus.DEAD
        elif record.ended:
            status = ContainerStatus.EXITED
        else:
            status = ContainerStatus.CREATED
        return ContainerState(
            server_id=self.spec.server_id,
            status=status,
            container_id=str(record.pid) if self.running else "",
            exit_code=record.exit_code if record.ended else None,
            started_at=record.started_at,
            finished_at=record.finished_at,
        )


def leads_its_session(pid: int) -> bool:
    """True if `pid` still leads its own session (as the server did; a reused pid rarely does)."""
    try:
        return os.getsid(pid) == pid
    except OSError:
        return False


async def pause(wake: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True (and reset) if `wake` was set meanwhile."""
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    wake.clear()
    return True
