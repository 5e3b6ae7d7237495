"""The process runtime runs real child processes: output, input, limits, stop and kill."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil
import pytest

from stellarstack.daemon.runtime import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerSpec,
    ContainerStatus,
    InvalidSpecError,
    OutputLine,
    ProcessRuntime,
)
from tests.daemon.waiting import collect_until

ECHO_LOOP = "echo ready; echo oops >&2; while read line; do echo got:$line; done"


def shell(server_id: str, directory: Path, script: str, **limits: int) -> ContainerSpec:
    """A spec running `script` with /bin/sh in `directory`."""
    return ContainerSpec(
        server_id=server_id, command=("sh", "-c", script), volume_dir=directory, **limits
    )


async def test_terminal_output_arrives_as_lines_in_order_and_input_reaches_the_server(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, ECHO_LOOP))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        first = await collect_until(output, lambda line: line.text == "oops")
        # One terminal: stderr and stdout arrive in the order written, as "stdout".
        assert first == [OutputLine("stdout", "ready"), OutputLine("stdout", "oops")]
        await process_runtime.send_input(server_id, "say <b>hi</b>\n")
        echoed = await collect_until(output, lambda line: line.text.startswith("got:"))
        # No terminal echo of the input itself: only the server's answer.
        assert echoed == [OutputLine("stdout", "got:say <b>hi</b>")]
    assert (await process_runtime.status(server_id)).status is ContainerStatus.RUNNING
    history = await process_runtime.logs(server_id, tail=2)
    assert history == [OutputLine("stdout", "oops"), OutputLine("stdout", "got:say <b>hi</b>")]
    assert len(await process_runtime.logs(server_id, tail=100)) == 3


async def test_the_command_runs_in_the_server_directory_without_the_daemons_environment(
    process_runtime: ProcessRuntime,
    server_id: str,
    server_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STELLAR_DAEMON_API_TOKEN", "strk_node_secret")
    spec = ContainerSpec(
        server_id=server_id,
        command=("sh", "-c", "pwd; env; echo done > marker"),
        volume_dir=server_dir,
        env={"SERVER_PORT": "25565"},
    )
    await process_runtime.create(spec)
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        lines = [line.text async for line in output]
    assert lines[0] == str(server_dir)
    assert "SERVER_PORT=25565" in lines
    assert not any("strk_node_secret" in line for line in lines)
    assert (server_dir / "marker").read_text() == "done\n"
    state = await process_runtime.wait(server_id)
    assert state.status is ContainerStatus.EXITED and state.exit_code == 0


async def test_memory_and_process_limits_are_applied_as_rlimits(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    spec = shell(
        server_id, server_dir, "cat /proc/self/limits", memory_limit=512 << 20, pids_limit=4000
    )
    await process_runtime.create(spec)
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        limits = {line.text.split("  ")[0]: line.text.split() async for line in output}
    assert str(512 << 20) in limits["Max address space"]
    assert "4000" in limits["Max processes"]
    assert limits["Max core file size"][4:6] == ["0", "0"]


async def test_stop_sends_the_signal_and_a_server_that_obeys_exits_with_it(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, "exec sleep 600"))
    await process_runtime.start(server_id)
    state = await process_runtime.stop(server_id, signal="SIGTERM", grace=10)
    assert state.status is ContainerStatus.EXITED
    assert state.exit_code == 128 + signal.SIGTERM


async def test_stop_kills_a_server_that_ignores_the_signal_after_the_grace_period(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, "trap '' TERM; echo up; sleep 600"))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        await collect_until(output, lambda line: line.text == "up")
    state = await process_runtime.stop(server_id, signal="SIGTERM", grace=0.5)
    assert state.exit_code == 128 + signal.SIGKILL
    assert not (await process_runtime.status(server_id)).running


async def test_children_of_the_server_die_with_it(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, "sleep 600 & echo $!; wait"))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        child = int((await collect_until(output, lambda line: line.text.isdigit()))[-1].text)
    assert psutil.pid_exists(child)
    await process_runtime.stop(server_id, grace=5)
    await asyncio.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


async def test_stats_report_memory_of_the_running_process(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    spec = shell(server_id, server_dir, "exec sleep 600", memory_limit=1 << 30)
    await process_runtime.create(spec)
    await process_runtime.start(server_id)
    stats = await process_runtime.stats(server_id)
    assert stats.memory_bytes > 0
    assert stats.memory_limit_bytes == 1 << 30
    assert stats.pids == 1


async def test_lifecycle_errors_are_runtime_errors(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    with pytest.raises(ContainerNotFoundError):
        await process_runtime.start(server_id)
    await process_runtime.create(shell(server_id, server_dir, "exec sleep 600"))
    with pytest.raises(ContainerConflictError):
        await process_runtime.create(shell(server_id, server_dir, "true"))
    with pytest.raises(ContainerConflictError):
        await process_runtime.kill(server_id)
    with pytest.raises(ContainerConflictError):
        await process_runtime.send_input(server_id, "x\n")
    await process_runtime.start(server_id)
    with pytest.raises(ContainerConflictError):
        await process_runtime.start(server_id)
    with pytest.raises(InvalidSpecError, match="unknown signal"):
        await process_runtime.kill(server_id, signal="SIGNOPE")
    await process_runtime.kill(server_id, signal="KILL")
    assert (await process_runtime.wait(server_id)).exit_code == 128 + signal.SIGKILL
    await process_runtime.remove(server_id)
    with pytest.raises(ContainerNotFoundError):
        await process_runtime.status(server_id)
    assert await process_runtime.list_managed() == []


async def test_a_running_server_is_killed_when_removed(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, "echo $$; exec sleep 600"))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        pid = int((await collect_until(output, lambda line: line.text.isdigit()))[-1].text)
    await process_runtime.remove(server_id)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ((), "needs a startup command"),
        (("./no-such-binary",), "not an executable"),
        (("no-such-binary-anywhere",), "not an executable"),
    ],
)
async def test_specs_the_process_runtime_cannot_run_are_refused(
    process_runtime: ProcessRuntime,
    server_id: str,
    server_dir: Path,
    command: tuple[str, ...],
    reason: str,
) -> None:
    spec = ContainerSpec(server_id=server_id, command=command, volume_dir=server_dir)
    with pytest.raises(InvalidSpecError, match=reason):
        await process_runtime.create(spec)
        await process_runtime.start(server_id)


async def test_an_executable_in_the_server_directory_is_found(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    script = server_dir / "start.sh"
    script.write_text("#!/bin/sh\necho started from $(pwd)\n")
    os.chmod(script, 0o755)
    spec = ContainerSpec(server_id=server_id, command=("./start.sh",), volume_dir=server_dir)
    await process_runtime.create(spec)
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        lines = [line.text async for line in output]
    assert lines == [f"started from {server_dir}"]


async def test_closing_the_runtime_stops_its_servers(server_id: str, server_dir: Path) -> None:
    runtime = ProcessRuntime(close_grace=1.0)
    await runtime.create(shell(server_id, server_dir, "trap '' TERM; echo $$; sleep 600"))
    async with await runtime.attach(server_id) as output:
        await runtime.start(server_id)
        pid = int((await collect_until(output, lambda line: line.text.isdigit()))[-1].text)
    await runtime.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert (await runtime.status(server_id)).exit_code == 128 + signal.SIGKILL
