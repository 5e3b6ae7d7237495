"""Crash handling on real Docker and the process runtime: restart with backoff, crash loops, OOM."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stellarstack.daemon.runtime import (
    ContainerRuntimeError,
    ContainerState,
    ContainerStatus,
    ProcessRuntime,
)
from stellarstack.daemon.servers.crash import CrashRecord, exit_reason
from stellarstack.daemon.servers.lifecycle import PowerBusyError
from stellarstack.daemon.servers.manager import ServerManager
from stellarstack.protocol.servers import CrashPolicy
from tests.daemon.servers.conftest import Servers
from tests.daemon.waiting import eventually


async def crash(servers: Servers, server_id: str) -> None:
    """Ask the game to crash (it exits with code 3)."""
    await servers.runtime.send_input(server_id, "crash\n")


async def test_a_crash_is_reported_and_the_server_restarted(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    await crash(servers, server_id)
    await servers.wait_status(server_id, "crashed")
    crashed = next(s for s in await servers.statuses(server_id) if s.status == "crashed")
    assert (crashed.exit_code, crashed.reason, crashed.crash_count) == (3, "exit code 3", 1)
    assert not crashed.oom_killed
    await servers.wait_status(server_id, "running", count=2)
    assert (await servers.runtime.status(server_id)).running
    assert await servers.alerts(server_id) == []


async def test_a_crash_within_the_window_is_a_loop_alerted_and_not_restarted(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    await crash(servers, server_id)
    await servers.wait_status(server_id, "running", count=2)
    await crash(servers, server_id)
    await servers.wait_status(server_id, "crashed", count=2)
    second = [s for s in await servers.statuses(server_id) if s.status == "crashed"][-1]
    assert second.crash_count == 2
    [alert] = await servers.alerts(server_id)
    assert alert.severity == "warning" and "not restarted" in alert.message
    await asyncio.sleep(1.5)  # past the 1 s backoff: no restart may come
    statuses = await servers.status_names(server_id)
    assert statuses[-1] == "crashed" and statuses.count("running") == 2
    assert not (await servers.runtime.status(server_id)).running


async def test_console_history_before_a_crash_is_kept(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id, crash={"restart": False}))
    console = servers.consoles.get(server_id)
    assert console is not None
    await servers.runtime.send_input(server_id, "last words\n")
    await crash(servers, server_id)
    await servers.wait_status(server_id, "crashed")
    viewer = console.join()
    frames = []
    while True:
        try:
            async with asyncio.timeout(0.5):
                frames.append(await viewer.next())
        except TimeoutError:
            break
    assert any("> last words" in frame for frame in frames)
    assert any("Crashing!" in frame for frame in frames)


async def test_no_restart_when_the_policy_says_so(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id, crash={"restart": False}))
    await crash(servers, server_id)
    await servers.wait_status(server_id, "crashed")
    await asyncio.sleep(1.5)
    assert (await servers.status_names(server_id)).count("starting") == 1


async def test_a_manual_start_after_a_crash_loop_runs_the_server_again(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id, crash={"restart": True, "window": 3600}))
    await crash(servers, server_id)
    await servers.wait_status(server_id, "running", count=2)
    await crash(servers, server_id)
    await servers.wait_status(server_id, "crashed", count=2)
    result = await servers.manager.power(server_id, "start")
    assert result["status"] == "running"
    await crash(servers, server_id)  # the count starts over: restarted, not a loop
    await servers.wait_status(server_id, "running", count=4)


async def test_an_out_of_memory_kill_is_reported_as_such(
    docker_servers: Servers, server_id: str
) -> None:
    hog = "echo Server ready on port 1; x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 60"
    spec = docker_servers.spec(
        server_id,
        command=["sh", "-c", hog],
        limits={"memoryMb": 16, "diskMb": 64, "pids": 32},
        crash={"restart": False},
    )
    try:
        await docker_servers.manager.create(spec)
    except ContainerRuntimeError as exc:
        pytest.skip(f"the engine refused a 16 MiB container: {exc}")
    await docker_servers.wait_status(server_id, "crashed")
    crashed = [s for s in await docker_servers.statuses(server_id) if s.status == "crashed"][-1]
    assert crashed.oom_killed and crashed.reason == "out of memory"


def test_backoff_doubles_up_to_the_cap_and_a_quick_crash_is_a_loop() -> None:
    policy = CrashPolicy(restart=True, window=10, max_backoff=4)
    record = CrashRecord()
    delays = [record.record(policy, at=100.0 * n) for n in range(1, 6)]
    assert [d.delay for d in delays] == [1, 2, 4, 4, 4]
    assert all(d.restart and not d.loop for d in delays)
    loop = record.record(policy, at=505.0)
    assert loop.loop and not loop.restart and loop.count == 6
    record.reset()
    assert record.record(policy, at=506.0).restart


def test_exit_reasons_are_readable() -> None:
    def state(code: int | None, oom: bool = False) -> ContainerState:
        return ContainerState("s", ContainerStatus.EXITED, exit_code=code, oom_killed=oom)

    assert exit_reason(state(137, oom=True)) == "out of memory"
    assert exit_reason(state(3)) == "exit code 3"
    assert exit_reason(state(139)) == "exit code 139 (signal 11)"


async def test_reattach_after_a_daemon_restart_follows_running_servers(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    stopped_id = f"{server_id}-b"
    await servers.manager.create(servers.spec(stopped_id))
    await servers.manager.power(stopped_id, "stop")
    await servers.manager.close()  # the daemon goes away; the servers stay as they are
    manager = servers.manager = servers.new_manager()
    await manager.reattach()
    assert (await servers.status_names(server_id))[-1] == "running"
    assert (await servers.status_names(stopped_id))[-1] == "stopped"
    await crash(servers, server_id)  # the new daemon's watcher sees it and restarts
    await servers.wait_status(server_id, "running", count=3)
    result = await _stop_once_free(manager, server_id)
    assert result["exitCode"] == 0


async def _stop_once_free(manager: ServerManager, server_id: str) -> dict[str, Any]:
    """Stop, retrying while the automatic restart still holds the server's power lock."""
    for _ in range(100):
        try:
            return await manager.power(server_id, "stop")
        except PowerBusyError:  # RUNNING is published just before the restart lets go
            await asyncio.sleep(0.1)
    raise AssertionError(f"{server_id} stayed busy for 10 s after its restart")


async def test_reattach_reports_a_crash_that_happened_while_the_daemon_was_down(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id, crash={"restart": False}))
    await servers.manager.close()
    await crash(servers, server_id)
    await eventually(lambda: _stopped(servers, server_id))
    manager = servers.manager = servers.new_manager()
    await manager.reattach()
    last = (await servers.statuses(server_id))[-1]
    assert (last.status, last.exit_code) == ("crashed", 3)


async def test_reattach_leaves_containers_without_a_spec_alone(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    servers.store.spec_path(server_id).unlink()  # a container this daemon knows nothing of
    await servers.manager.close()
    manager = servers.manager = servers.new_manager()
    await manager.reattach()
    assert (await servers.runtime.status(server_id)).running
    assert (await servers.status_names(server_id)).count("running") == 1


async def _stopped(servers: Servers, server_id: str) -> bool:
    return not (await servers.runtime.status(server_id)).running


async def test_a_restarted_process_daemon_recreates_its_servers_stopped(
    process_servers: Servers, server_id: str
) -> None:
    servers = process_servers
    await servers.manager.create(servers.spec(server_id))
    (servers.store.volume_dir(server_id) / "world.dat").write_text("kept")
    await servers.manager.close()
    await servers.consoles.close()
    await servers.runtime.close()  # the daemon process ends: its child processes go too
    servers.runtime = ProcessRuntime(close_grace=2.0)
    servers.consoles.bind(servers.runtime)
    manager = servers.manager = servers.new_manager()
    await manager.reattach()
    last = (await servers.statuses(server_id))[-1]
    assert (last.status, last.reason) == ("stopped", "the daemon restarted")
    assert (await manager.power(server_id, "start"))["status"] == "running"
    assert (servers.store.volume_dir(server_id) / "world.dat").read_text() == "kept"
