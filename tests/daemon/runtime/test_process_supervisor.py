"""The process runtime's supervisor: a terminal, survival across runtime instances, installs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
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
from tests.daemon.waiting import collect_until, eventually

GAME = (
    "trap 'echo bye; exit 0' TERM; echo pid=$$; tty; [ -t 0 ] && echo stdin-is-a-terminal;"
    ' while read line; do [ "$line" = stop ] && { echo stopping; exit 7; }; echo got:$line; done'
)


def shell(server_id: str, directory: Path, script: str, **limits: int) -> ContainerSpec:
    """A spec running `script` with /bin/sh in `directory`."""
    return ContainerSpec(
        server_id=server_id, command=("sh", "-c", script), volume_dir=directory, **limits
    )


@pytest.fixture
async def state_dir(tmp_path: Path) -> AsyncIterator[Path]:
    """A persistent state dir; whatever still runs from it is killed at the end."""
    path = tmp_path / "processes"
    yield path
    cleanup = ProcessRuntime(state_dir=path)
    for state in await cleanup.list_managed():
        await cleanup.remove(state.server_id)
    await cleanup.close()


async def started(runtime: ProcessRuntime, server_id: str) -> int:
    """Start the server and return its pid once it has printed it."""
    async with await runtime.attach(server_id) as output:
        await runtime.start(server_id)
        lines = await collect_until(output, lambda line: line.text.startswith("pid="))
    return int(lines[-1].text.removeprefix("pid="))


async def test_the_server_runs_under_a_terminal_as_its_session_leader(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, GAME))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        lines = await collect_until(output, lambda line: line.text == "stdin-is-a-terminal")
    texts = [line.text for line in lines]
    assert any(text.startswith("/dev/pts/") for text in texts), texts
    pid = int(texts[0].removeprefix("pid="))
    assert psutil.Process(pid).terminal() is not None
    assert os.getsid(pid) == pid  # its own session: signals to the daemon's group miss it


async def test_a_server_outlives_its_runtime_and_a_new_instance_takes_it_over(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    first = ProcessRuntime(state_dir=state_dir)
    await first.create(shell(server_id, server_dir, GAME))
    pid = await started(first, server_id)
    await first.close()  # the daemon goes away
    assert psutil.pid_exists(pid)

    second = ProcessRuntime(state_dir=state_dir)
    try:
        [state] = await second.list_managed()
        assert (state.server_id, state.status, state.container_id) == (
            server_id,
            ContainerStatus.RUNNING,
            str(pid),
        )
        assert state.started_at is not None
        stats = await second.stats(server_id)
        assert stats.memory_bytes > 0 and stats.pids >= 1
        assert stats.uptime is not None and stats.uptime >= 0
        async with await second.attach(server_id) as output:
            await second.send_input(server_id, "hello again\n")
            echoed = await collect_until(output, lambda line: line.text.startswith("got:"))
            assert echoed[-1] == OutputLine("stdout", "got:hello again")
            await second.send_input(server_id, "stop\n")
            ending = [line.text async for line in output]
        assert ending == ["stopping"]
        final = await second.wait(server_id)
        assert (final.status, final.exit_code) == (ContainerStatus.EXITED, 7)
        assert "got:hello again" in [line.text for line in await second.logs(server_id)]
    finally:
        await second.close()


async def test_a_new_instance_stops_and_kills_a_server_it_did_not_start(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    first = ProcessRuntime(state_dir=state_dir)
    await first.create(shell(server_id, server_dir, GAME))
    await started(first, server_id)
    await first.close()

    second = ProcessRuntime(state_dir=state_dir)
    try:
        state = await second.stop(server_id, signal="SIGTERM", grace=10)
        assert (state.status, state.exit_code) == (ContainerStatus.EXITED, 0)
        assert "bye" in [line.text for line in await second.logs(server_id, tail=5)]
        pid = await started(second, server_id)
        await second.close()

        third = ProcessRuntime(state_dir=state_dir)
        try:
            await third.kill(server_id)
            killed = await third.wait(server_id)
            assert killed.exit_code == 128 + signal.SIGKILL
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
            with pytest.raises(ContainerConflictError):
                await third.kill(server_id)
            with pytest.raises(ContainerConflictError):
                await third.send_input(server_id, "x\n")
        finally:
            await third.close()
    finally:
        await second.close()


async def test_a_supervisor_killed_behind_our_back_leaves_a_dead_server(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    runtime = ProcessRuntime(state_dir=state_dir)
    try:
        await runtime.create(shell(server_id, server_dir, "echo pid=$$; exec sleep 600"))
        pid = await started(runtime, server_id)
        supervisor = psutil.Process(pid).parent()
        assert supervisor is not None and str(state_dir) in " ".join(supervisor.cmdline())
        supervisor.kill()
        async with asyncio.timeout(10):
            state = await runtime.wait(server_id)
        assert state.status is ContainerStatus.DEAD
        await runtime.remove(server_id)
        await eventually(
            lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        )
    finally:
        await runtime.close()


async def test_the_output_log_on_disk_is_capped_and_rotated(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    runtime = ProcessRuntime(state_dir=state_dir, log_cap=64 * 1024)
    script = "i=0; while [ $i -lt 3000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done"
    try:
        await runtime.create(shell(server_id, server_dir, script))
        async with await runtime.attach(server_id) as output:
            await runtime.start(server_id)
            lines = [line.text async for line in output]
        assert lines[0] == "line-0-padding-padding-padding" and len(lines) == 3000
        assert lines[-1] == "line-2999-padding-padding-padding"
        record = state_dir / server_id
        assert (record / "output.log").stat().st_size <= 64 * 1024
        assert (record / "output.log.1").stat().st_size <= 64 * 1024
        tail = await runtime.logs(server_id, tail=3)
        assert [line.text for line in tail] == [
            f"line-{i}-padding-padding-padding" for i in (2997, 2998, 2999)
        ]
    finally:
        await runtime.close()


async def test_install_runs_to_its_end_with_output_and_exit_code(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    lines: list[OutputLine] = []

    async def collect(line: OutputLine) -> None:
        lines.append(line)

    spec = ContainerSpec(
        server_id=server_id,
        command=(
            "sh",
            "-c",
            "pwd; echo $GAME_VERSION; echo bad >&2; echo x > installed;"
            " grep 'Max processes' /proc/self/limits; exit 4",
        ),
        env={"GAME_VERSION": "1.21"},
        volume_dir=server_dir,
        pids_limit=4000,
    )
    assert await process_runtime.run_once(spec, timeout=30, on_output=collect) == 4
    assert OutputLine("stdout", str(server_dir)) in lines
    assert OutputLine("stdout", "1.21") in lines
    assert OutputLine("stderr", "bad") in lines
    assert (server_dir / "installed").read_text() == "x\n"
    [limit] = [line.text.split() for line in lines if line.text.startswith("Max processes")]
    assert limit[2:4] == ["4000", "4000"]
    assert await process_runtime.list_managed() == []


async def test_an_install_past_its_budget_is_killed_with_its_children(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    pids: list[int] = []

    async def collect(line: OutputLine) -> None:
        pids.extend(int(word) for word in line.text.split() if word.isdigit())

    spec = shell(server_id, server_dir, "sleep 600 & echo $! $$; wait")
    begun = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 1\.5 s"):
        await process_runtime.run_once(spec, timeout=1.5, on_output=collect)
    assert time.monotonic() - begun < 5
    assert len(pids) == 2

    def gone() -> bool:
        return all(not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie" for p in pids)

    await eventually(gone, seconds=5)


@pytest.mark.parametrize("timeout", [0, -5, float("nan")])
async def test_install_budgets_must_be_positive(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path, timeout: float
) -> None:
    spec = shell(server_id, server_dir, "echo ran > ran.txt")
    with pytest.raises(InvalidSpecError, match="timeout"):
        await process_runtime.run_once(spec, timeout=timeout)
    assert not (server_dir / "ran.txt").exists()


@pytest.mark.parametrize("server_id", ["../x", "..", "a/../../etc", "/etc", "%2e%2e%2f", "..\\x"])
async def test_hostile_server_ids_never_reach_the_state_dir(
    state_dir: Path, tmp_path: Path, server_id: str
) -> None:
    (tmp_path / "x").mkdir()
    runtime = ProcessRuntime(state_dir=state_dir)
    try:
        for call in (runtime.status, runtime.start, runtime.remove, runtime.wait):
            with pytest.raises(ContainerNotFoundError):
                await call(server_id)
        with pytest.raises(ContainerNotFoundError):
            await runtime.send_input(server_id, "x\n")
        assert (tmp_path / "x").is_dir()
    finally:
        await runtime.close()


async def test_an_unreadable_record_in_the_state_dir_is_skipped(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    (state_dir / "broken").mkdir(parents=True)
    (state_dir / "broken" / "spec.json").write_text("{not json")
    (state_dir / "..hidden").mkdir()
    runtime = ProcessRuntime(state_dir=state_dir)
    try:
        await runtime.create(shell(server_id, server_dir, "true"))
        assert [s.server_id for s in await runtime.list_managed()] == [server_id]
    finally:
        await runtime.close()


async def test_a_signal_sent_right_after_start_reaches_the_server(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    spec = shell(server_id, server_dir, "exec sleep 600", memory_limit=1 << 30)
    await process_runtime.create(spec)
    for _ in range(3):
        await process_runtime.start(server_id)
        async with asyncio.timeout(5):
            state = await process_runtime.stop(server_id, grace=4)
        assert state.exit_code == 128 + signal.SIGTERM
        await process_runtime.start(server_id)
        await process_runtime.kill(server_id)
        async with asyncio.timeout(5):
            assert (await process_runtime.wait(server_id)).exit_code == 128 + signal.SIGKILL


DAEMON = """
import asyncio, sys
from pathlib import Path
from stellarstack.daemon.runtime import ContainerSpec, ProcessRuntime

async def main() -> None:
    runtime = ProcessRuntime(state_dir=Path(sys.argv[1]))
    spec = ContainerSpec(server_id=sys.argv[2], command=("sh", "-c", sys.argv[4]),
                         volume_dir=Path(sys.argv[3]))
    await runtime.create(spec)
    await runtime.start(spec.server_id)
    print("started", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def test_a_server_survives_its_daemon_being_killed(
    state_dir: Path, server_id: str, server_dir: Path
) -> None:
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DAEMON,
        str(state_dir),
        server_id,
        str(server_dir),
        GAME,
        stdout=asyncio.subprocess.PIPE,
    )
    assert daemon.stdout is not None
    async with asyncio.timeout(15):
        while (await daemon.stdout.readline()).strip() != b"started":
            pass  # log lines
    daemon.kill()  # no clean shutdown at all
    await daemon.wait()

    runtime = ProcessRuntime(state_dir=state_dir)
    try:
        [state] = await runtime.list_managed()
        assert state.status is ContainerStatus.RUNNING
        async with await runtime.attach(server_id) as output:
            await runtime.send_input(server_id, "still there?\n")
            await collect_until(output, lambda line: line.text == "got:still there?")
        stopped = await runtime.stop(server_id, grace=10)
        assert (stopped.status, stopped.exit_code) == (ContainerStatus.EXITED, 0)
    finally:
        await runtime.close()


async def test_servers_find_programs_in_debians_game_directories(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    lines: list[OutputLine] = []

    async def collect(line: OutputLine) -> None:
        lines.append(line)

    spec = shell(server_id, server_dir, "echo $PATH")
    assert await process_runtime.run_once(spec, timeout=10, on_output=collect) == 0
    assert {"/usr/games", "/usr/local/games"} <= set(lines[0].text.split(":"))


async def test_a_flood_of_output_reaches_an_attached_reader_whole_and_in_order(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    await process_runtime.create(shell(server_id, server_dir, "seq 50000"))
    async with await process_runtime.attach(server_id) as output:
        await process_runtime.start(server_id)
        async with asyncio.timeout(30):
            lines = [line.text async for line in output]
    assert lines == [str(i) for i in range(1, 50001)]
