"""The on-disk record of one process-runtime server, shared by the daemon and its supervisor.

``<state dir>/<server id>/`` holds ``spec.json`` (what to run), the supervisor's files
(`supervisor.py`: launch, state, exit, output log, stdin and bell FIFOs) and nothing else,
so a daemon started later rebuilds every server from the directory alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from stellarstack.daemon.runtime.base import ContainerSpec, PortBinding
from stellarstack.daemon.runtime.supervisor import (
    BELL,
    EXIT_FILE,
    FIFO,
    LAUNCH_FILE,
    LOG_FILE,
    STATE_FILE,
    write_json,
)

__all__ = ["LogFollower", "OutputBell", "RunRecord", "ServerFiles", "is_server_id"]

SPEC_FILE = "spec.json"
_SERVER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CHUNK = 256 * 1024
_FOLLOW_CHUNK = 64 * 1024
"""Read at most this much per step, so readers take each batch before the next."""


def is_server_id(value: str) -> bool:
    """True for an id that is safe as a directory name (no separators, no leading dot)."""
    return _SERVER_ID.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What the files say about the latest run: pids and times, and how it ended if it has."""

    pid: int | None = None
    supervisor_pid: int | None = None
    started_at: datetime | None = None
    exit_code: int | None = None
    finished_at: datetime | None = None
    ended: bool = False


class ServerFiles:
    """Paths and readers of one server's state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = directory / LOG_FILE
        self.fifo = directory / FIFO
        self.bell = directory / BELL

    def write_spec(self, spec: ContainerSpec) -> None:
        """Record the server's spec (creating the directory, private to the daemon)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=False)
        write_json(str(self.directory / SPEC_FILE), _spec_json(spec))

    def read_spec(self) -> ContainerSpec:
        """The recorded spec."""
        data = json.loads((self.directory / SPEC_FILE).read_text(encoding="utf-8"))
        ports = tuple(PortBinding(**port) for port in data.pop("ports"))
        volume = data.pop("volume_dir")
        return ContainerSpec(
            **{**data, "command": tuple(data["command"])},
            ports=ports,
            volume_dir=Path(volume) if volume else None,
        )

    def write_launch(self, launch: dict[str, Any]) -> None:
        """Describe the next run for the supervisor; forget how the previous one went."""
        for name in (STATE_FILE, EXIT_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
        write_json(str(self.directory / LAUNCH_FILE), launch)

    def has_ended(self) -> bool:
        """True once the supervisor has recorded the end of the run."""
        return (self.directory / EXIT_FILE).exists()

    def record(self) -> RunRecord:
        """Read the state and exit files (an absent file is a run not started or not ended)."""
        state, end = _read(self.directory / STATE_FILE), _read(self.directory / EXIT_FILE)
        if state is None and end is None:
            return RunRecord()
        started = _time((state or {}).get("started_at"))
        if end is not None:
            return RunRecord(
                pid=(state or {}).get("pid"),
                started_at=started,
                exit_code=int(end["exit_code"]),
                finished_at=_time(end.get("finished_at")),
                ended=True,
            )
        assert state is not None
        return RunRecord(
            pid=int(state["pid"]), supervisor_pid=int(state["supervisor_pid"]), started_at=started
        )

    def supervisor_alive(self, pid: int) -> bool:
        """True while `pid` is this server's supervisor (not a recycled pid, not a zombie)."""
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return str(self.directory) in process.cmdline()
        except psutil.AccessDenied:
            return True
        except psutil.Error:
            return False

    def supervisor_errors(self) -> str:
        """The supervisor's own error output (why a run could not start)."""
        try:
            return (self.directory / "supervisor.log").read_text(errors="replace")[-500:].strip()
        except FileNotFoundError:
            return ""

    def tail(self, count: int) -> list[str]:
        """The last `count` lines of output (the rotated file too, when needed)."""
        if count <= 0:
            return []
        lines: list[str] = []
        for path in (self.log, self.log.with_name(f"{LOG_FILE}.1")):
            try:
                with open(path, "rb") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    handle.seek(max(size - _CHUNK, 0))
                    text = handle.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                continue
            older = [line.removesuffix("\r") for line in text.splitlines()]
            lines = older + lines
            if len(lines) >= count:
                break
        return lines[-count:]


class LogFollower:
    """Read a growing output log from a position on, following it over rotations."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o600)
        self._inode = os.fstat(self._fd).st_ino
        if from_end:
            os.lseek(self._fd, 0, os.SEEK_END)

    def read(self) -> bytes:
        """The bytes written since the last read (b"" when there are none yet)."""
        data = os.read(self._fd, _FOLLOW_CHUNK)
        if data:
            return data
        try:
            inode = os.stat(self._path).st_ino
        except FileNotFoundError:
            return b""
        if inode != self._inode:  # rotated: the old file is read to its end, go on in the new
            os.close(self._fd)
            self._fd = os.open(self._path, os.O_RDONLY)
            self._inode = inode
            return os.read(self._fd, _FOLLOW_CHUNK)
        return b""

    def close(self) -> None:
        """Release the file."""
        with contextlib.suppress(OSError):
            os.close(self._fd)


class OutputBell:
    """The supervisor's doorbell: readable when the log grew, at end of file when it exited.

    `on_ring` runs in the event loop on each ring. A supervisor without a bell (started by
    an older daemon) or a bell that broke leaves `ringing` False: the reader polls instead.
    """

    def __init__(self, path: Path, on_ring: Callable[[], None]) -> None:
        self._on_ring = on_ring
        self._fd: int | None = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):  # a plain file would always be readable
            os.close(fd)
            return
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._drain)

    @property
    def ringing(self) -> bool:
        """True while the bell works (the supervisor holds it open)."""
        return self._fd is not None

    def _drain(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the supervisor closed it: exited (or gone)
            self.close()
        self._on_ring()

    def close(self) -> None:
        """Stop listening."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _spec_json(spec: ContainerSpec) -> dict[str, Any]:
    return {
        "server_id": spec.server_id,
        "image": spec.image,
        "command": list(spec.command),
        "env": dict(spec.env),
        "memory_limit": spec.memory_limit,
        "cpu_limit": spec.cpu_limit,
        "pids_limit": spec.pids_limit,
        "ports": [
            {
                "host_ip": p.host_ip,
                "host_port": p.host_port,
                "container_port": p.container_port,
                "protocol": p.protocol,
            }
            for p in spec.ports
        ],
        "volume_dir": str(spec.volume_dir) if spec.volume_dir else None,
        "labels": dict(spec.labels),
        "working_dir": spec.working_dir,
        "user": spec.user,
    }
