"""Keep one server process alive across daemon restarts: a detached PTY owner (stdlib only).

Run as ``python -I -S supervisor.py STATE_DIR``; it detaches (double fork, new session) and
returns at once. The detached supervisor then reads ``launch.json`` in STATE_DIR and:

- runs ``argv`` in ``cwd`` with ``env`` as the session leader of a new pseudo-terminal (so
  ``tty`` and ``[ -t 0 ]`` hold; echo and signal keys are off: console input is data);
- writes ``state.json`` (its own pid, the server's pid, start time) once the server runs;
- appends everything the terminal prints to ``output.log``, rotating it to ``output.log.1``
  past ``log_cap`` bytes;
- rings the ``bell`` FIFO (one byte, never blocking) after each write to the log, and closes
  it when it exits, so a reader learns of new output (or the end) at once instead of polling;
- copies bytes written to the ``stdin`` FIFO into the terminal (a capped backlog);
- when the server exits, kills what is left of its process group, drains the terminal and
  writes ``exit.json`` (exit code, 128+signal when killed; finish time), then exits.

SIGTERM to the supervisor is passed on to the server's process group. The daemon talks to
it only through these files and signals, so any later daemon can take over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import selectors
import signal
import struct
import sys
import termios
import time
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "BELL",
    "EXIT_FILE",
    "FIFO",
    "LAUNCH_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "main",
    "write_json",
]

LAUNCH_FILE = "launch.json"
STATE_FILE = "state.json"
EXIT_FILE = "exit.json"
LOG_FILE = "output.log"
FIFO = "stdin"
BELL = "bell"
EXIT_CANNOT_RUN = 127

_READ = 64 * 1024
_INPUT_BACKLOG = 256 * 1024
_DRAIN_SECONDS = 1.0
_WINDOW = struct.pack("HHHH", 50, 200, 0, 0)  # rows, columns: wide enough not to wrap logs


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write `data` to `path` atomically (a reader sees the old or the new file, whole)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Log:
    """The output file, rotated to `.1` when it grows past its cap."""

    def __init__(self, path: str, cap: int) -> None:
        self.path, self.cap = path, cap
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        if self.size + len(data) > self.cap and self.size > 0:
            os.close(self.fd)
            os.replace(self.path, f"{self.path}.1")
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self.size = 0
        os.write(self.fd, data)
        self.size += len(data)


def _open_fifo(path: str) -> int:
    """Create and open a FIFO read-write: opening never blocks, writes fail rather than wait."""
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def _open_terminal() -> tuple[int, int]:
    """A pty pair; the server side without echo or signal keys, a wide window."""
    master, slave = pty.openpty()
    attributes = termios.tcgetattr(slave)
    attributes[3] &= ~(termios.ECHO | termios.ECHONL | termios.ISIG)
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, _WINDOW)
    os.set_blocking(master, False)
    return master, slave


_RESET = (signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP, signal.SIGINT, signal.SIGCHLD)


def _exec_server(launch: dict[str, Any], master: int, slave: int) -> None:
    """In the forked child: become the terminal's session leader and exec; never returns.

    Signals stay blocked (by the parent) until the defaults are back, so a signal sent early
    never runs the supervisor's handlers here; the exec closes the parent's sync pipe.
    """
    try:
        for sig in _RESET:
            signal.signal(sig, signal.SIG_DFL)  # ignored signals would stay ignored over exec
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        os.chdir(launch["cwd"])
        os.execve(launch["argv"][0], launch["argv"], launch["env"])  # noqa: S606 - argv, no shell
    except OSError as exc:
        os.write(2, f"stellarstack-supervisor: cannot run the server: {exc}\n".encode())
    os._exit(EXIT_CANNOT_RUN)


class _Supervisor:
    """The running supervisor of one server."""

    def __init__(self, directory: str, launch: dict[str, Any]) -> None:
        self.directory = directory
        self.log = _Log(os.path.join(directory, LOG_FILE), int(launch.get("log_cap", 8 << 20)))
        # Read-write: opening never blocks and the FIFO never reports end of file.
        self.stdin = _open_fifo(os.path.join(directory, FIFO))
        self.bell = _open_fifo(os.path.join(directory, BELL))
        self.master, slave = _open_terminal()
        self.wakeup_read, wakeup_write = os.pipe()
        os.set_blocking(wakeup_write, False)
        os.set_blocking(self.wakeup_read, False)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.forward(signal.SIGTERM))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ready_read, ready_write = os.pipe()  # both close-on-exec
        signal.pthread_sigmask(signal.SIG_BLOCK, _RESET)
        self.pid = os.fork()
        if self.pid == 0:
            os.close(ready_read)
            _exec_server(launch, self.master, slave)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _RESET)
        os.close(ready_write)
        os.close(slave)
        # End of file once the child has exec'd (or died): its session exists by then.
        while os.read(ready_read, 1):
            pass
        os.close(ready_read)
        self.pending = bytearray()
        write_json(
            os.path.join(directory, STATE_FILE),
            {"supervisor_pid": os.getpid(), "pid": self.pid, "started_at": _now()},
        )

    def forward(self, sig: signal.Signals) -> None:
        """Signal the server's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def run(self) -> int:
        """Copy output and input until the server exits; return its exit code."""
        selector = selectors.DefaultSelector()
        selector.register(self.master, selectors.EVENT_READ, "out")
        selector.register(self.stdin, selectors.EVENT_READ, "in")
        selector.register(self.wakeup_read, selectors.EVENT_READ, "wake")
        terminal_open = True
        while True:
            reaped, status = os.waitpid(self.pid, os.WNOHANG)
            if reaped:
                break
            for key, events in selector.select(timeout=1.0):
                if key.data == "out" and events & selectors.EVENT_READ:
                    terminal_open = self.copy_output()
                    if not terminal_open:
                        selector.unregister(self.master)
                elif key.data == "out":
                    self.flush_input()
                elif key.data == "in":
                    self.take_input()
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wakeup_read, 4096)
            if terminal_open:
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.pending else 0)
                selector.modify(self.master, wanted, "out")
        self.forward(signal.SIGKILL)  # leftovers go with the server, as in a container
        deadline = time.monotonic() + _DRAIN_SECONDS
        while terminal_open and time.monotonic() < deadline:
            if not selector.select(timeout=0.05):
                break
            terminal_open = self.copy_output()
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code

    def copy_output(self) -> bool:
        """Move what the terminal printed to the log; False once the terminal has closed.

        A terminal hands over a few KiB per read: reads are gathered (up to _READ bytes) into
        one log write and one ring, so a flood costs few writes and wake-ups downstream.
        """
        data = bytearray()
        terminal_open = True
        while len(data) < _READ:
            try:
                chunk = os.read(self.master, _READ - len(data))
            except BlockingIOError:
                break
            except OSError as exc:  # EIO: every process holding the terminal has gone
                if exc.errno != errno.EIO:
                    raise
                chunk = b""
            if not chunk:
                terminal_open = False
                break
            data += chunk
        if data:
            self.log.write(bytes(data))
            self.ring()
        return terminal_open

    def ring(self) -> None:
        """Tell a reader of the bell that the log grew (a full bell already says so)."""
        with contextlib.suppress(OSError):
            os.write(self.bell, b"\0")

    def take_input(self) -> None:
        """Queue console input from the FIFO (dropping what exceeds the backlog)."""
        with contextlib.suppress(BlockingIOError):
            data = os.read(self.stdin, _READ)
            room = _INPUT_BACKLOG - len(self.pending)
            self.pending += data[: max(room, 0)]
        self.flush_input()

    def flush_input(self) -> None:
        """Write queued input into the terminal as far as it takes it."""
        if not self.pending:
            return
        try:
            written = os.write(self.master, self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.pending.clear()
            return
        del self.pending[:written]


def main(argv: list[str]) -> int:
    """Detach, then supervise the server described by STATE_DIR/launch.json."""
    if len(argv) != 1:
        sys.stderr.write("usage: supervisor.py STATE_DIR\n")
        return 2
    directory = os.path.abspath(argv[0])
    with open(os.path.join(directory, LAUNCH_FILE), encoding="utf-8") as handle:
        launch = json.load(handle)
    if os.fork() > 0:
        return 0  # the caller's child returns at once; the grandchild is the supervisor
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    errors = os.open(os.path.join(directory, "supervisor.log"), os.O_WRONLY | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(errors, 2)
    try:
        supervisor = _Supervisor(directory, launch)
        code = supervisor.run()
    except Exception as exc:
        sys.stderr.write(f"stellarstack-supervisor: {exc!r}\n")
        code = EXIT_CANNOT_RUN
    write_json(os.path.join(directory, EXIT_FILE), {"exit_code": code, "finished_at": _now()})
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
