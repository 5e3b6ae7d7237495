"""Running commands for the process runtime: argv and environment, signals, stats, one-off runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal as signals
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from stellarstack.daemon.runtime import launcher
from stellarstack.daemon.runtime.base import ContainerSpec, OutputLine, StreamName
from stellarstack.daemon.runtime.errors import ContainerRuntimeError, InvalidSpecError
from stellarstack.daemon.runtime.output import LineSplitter

__all__ = [
    "ProcessProbes",
    "command_argv",
    "environment",
    "exit_code",
    "parse_signal",
    "run_command",
    "sample_tree",
    "server_path",
    "signal_group",
]

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GAMES_PATH = ("/usr/local/games", "/usr/games")  # Debian's game servers (minetestserver)
_READ_CHUNK = 64 * 1024

ProcessProbes = dict[int, psutil.Process]
"""psutil handles kept between samples (cpu percent is a delta between two of them)."""


def parse_signal(value: str | int) -> signals.Signals:
    """`SIGTERM`, `TERM` or `15` as a signal; InvalidSpecError for anything else."""
    try:
        if isinstance(value, int) or value.isdigit():
            return signals.Signals(int(value))
        name = value.upper()
        return signals.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError) as exc:
        raise InvalidSpecError(f"unknown signal {value!r}") from exc


def signal_group(pid: int, sig: signals.Signals) -> None:
    """Signal the process group led by `pid` (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def exit_code(returncode: int) -> int:
    """A shell-style exit code: 128 + the signal for a process killed by one."""
    return 128 - returncode if returncode < 0 else returncode


def server_path() -> str:
    """The PATH servers run with: the daemon's, plus Debian's game directories (root lacks them)."""
    parts = os.environ.get("PATH", _DEFAULT_PATH).split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in _GAMES_PATH if d not in parts)])


def environment(spec: ContainerSpec) -> dict[str, str]:
    """A small, explicit environment: the daemon's own variables (tokens) never leak."""
    assert spec.volume_dir is not None
    env = {"PATH": server_path(), "HOME": str(spec.volume_dir)}
    env["LANG"] = "C.UTF-8"
    env["TERM"] = "xterm"
    env.update(spec.env)
    return env


def command_argv(spec: ContainerSpec, env: dict[str, str]) -> list[str]:
    """The resolved command (absolute program), wrapped by the launcher when limits apply."""
    assert spec.volume_dir is not None
    program = spec.command[0]
    if "/" in program:
        candidate = Path(program) if Path(program).is_absolute() else spec.volume_dir / program
        found = str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    else:
        found = shutil.which(program, path=env["PATH"])
    if found is None:
        raise InvalidSpecError(f"{program!r} is not an executable in PATH or the server directory")
    command = [found, *spec.command[1:]]
    options: list[str] = []
    if spec.memory_limit is not None:
        options += ["--as", str(spec.memory_limit)]
    if spec.pids_limit is not None:
        options += ["--nproc", str(spec.pids_limit)]
    if not options:
        return command
    return [sys.executable, "-I", "-S", launcher.__file__, *options, "--", *command]


def sample_tree(pid: int, probes: ProcessProbes) -> tuple[float, int, int]:
    """(cpu percent of one core, RSS bytes, process count) summed over `pid` and its children."""
    root = probes.get(pid) or psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    cpu, memory, seen = 0.0, 0, set()
    for proc in tree:
        probe = probes.setdefault(proc.pid, proc)
        with contextlib.suppress(psutil.Error):
            cpu += probe.cpu_percent(None)
            memory += probe.memory_info().rss
            seen.add(proc.pid)
    for stale in probes.keys() - seen:
        del probes[stale]
    return cpu, memory, len(seen)


async def run_command(
    spec: ContainerSpec,
    *,
    timeout: float,  # noqa: ASYNC109 - the budget is enforced here, killing the group
    on_output: Callable[[OutputLine], Awaitable[None]] | None,
) -> int:
    """Run the spec's command in its directory to its end; kill its group past `timeout`."""
    assert spec.volume_dir is not None
    env = environment(spec)
    argv = command_argv(spec, env)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=spec.volume_dir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ContainerRuntimeError(f"{spec.server_id}: cannot run: {exc}") from exc
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(timeout):
            readers = asyncio.gather(
                _read_lines(process.stdout, "stdout", on_output),
                _read_lines(process.stderr, "stderr", on_output),
            )
            try:
                code = await process.wait()
                signal_group(process.pid, signals.SIGKILL)  # leftovers holding the pipes
                await readers
            finally:
                readers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await readers
    except TimeoutError:
        raise TimeoutError(
            f"{spec.server_id}: the install did not finish within {timeout:g} s"
        ) from None
    finally:
        if process.returncode is None:
            signal_group(process.pid, signals.SIGKILL)
            await process.wait()
    return exit_code(code)


async def _read_lines(
    reader: asyncio.StreamReader,
    name: StreamName,
    on_output: Callable[[OutputLine], Awaitable[None]] | None,
) -> None:
    splitter = LineSplitter()
    while chunk := await reader.read(_READ_CHUNK):
        for text in splitter.feed(chunk):
            if on_output is not None:
                await on_output(OutputLine(name, text))
    for text in splitter.flush():
        if on_output is not None:
            await on_output(OutputLine(name, text))
