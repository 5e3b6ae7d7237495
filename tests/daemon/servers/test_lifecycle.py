"""Server lifecycle on real Docker and the process runtime: create, stop, restart, kill, delete."""

from __future__ import annotations

import asyncio
import stat

import pytest

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.runtime import ContainerStatus
from stellarstack.daemon.servers.install import run_install
from stellarstack.daemon.servers.lifecycle import PowerBusyError
from tests.daemon.servers.conftest import Servers
from tests.daemon.waiting import eventually

STAGES = [
    "pulling_image",
    "installing",
    "configuring",
    "creating_container",
    "starting",
    "waiting_ready",
    "done",
]


def install_step(servers: Servers, script: str) -> dict[str, object]:
    """An install step running `script` in the busybox test image."""
    return {"image": servers.install_image, "script": script, "timeout": 60}


async def output_of(servers: Servers, server_id: str) -> str:
    """The server's recent output as one text."""
    return "\n".join(line.text for line in await servers.runtime.logs(server_id, tail=200))


async def test_create_reaches_running_with_every_step_published(
    servers: Servers, server_id: str
) -> None:
    spec = servers.spec(
        server_id,
        install=install_step(servers, "echo fetching game files; echo v1 > version.txt"),
        configFiles=[{"path": "server.properties", "parser": "properties", "set": {"motd": "hi"}}],
    )
    result = await servers.manager.create(spec)
    assert result["status"] == "running"
    stages = [step.stage for step in await servers.stages(server_id)]
    assert [s for s in STAGES if s in stages] == STAGES
    assert stages[-1] == "done"
    assert all(step.deployment_id == f"dep-{server_id}" for step in await servers.stages(server_id))
    statuses = await servers.status_names(server_id)
    assert statuses == ["installing", "starting", "running"]
    volume = servers.store.volume_dir(server_id)
    assert (volume / "version.txt").read_text() == "v1\n"
    assert "motd=hi" in (volume / "server.properties").read_text()
    assert "fetching game files" in servers.store.install_log(server_id).read_text()
    assert stat.S_IMODE(servers.store.spec_path(server_id).stat().st_mode) == 0o600
    assert "Server ready on port" in await output_of(servers, server_id)
    assert (await servers.runtime.status(server_id)).status is ContainerStatus.RUNNING


async def test_create_without_start_leaves_the_server_stopped(
    servers: Servers, server_id: str
) -> None:
    result = await servers.manager.create(servers.spec(server_id, startOnCompletion=False))
    assert result["status"] == "created"
    assert (await servers.status_names(server_id)) == ["stopped"]


async def test_stop_sends_the_stop_command_and_the_game_exits_cleanly(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    result = await servers.manager.power(server_id, "stop")
    assert result["exitCode"] == 0
    assert "Stopping..." in await output_of(servers, server_id)
    assert (await servers.status_names(server_id))[-2:] == ["stopping", "stopped"]


async def test_stop_kills_the_server_when_it_ignores_the_stop_command(
    servers: Servers, server_id: str
) -> None:
    spec = servers.spec(server_id, stop={"command": "please stop", "timeout": 1})
    await servers.manager.create(spec)
    result = await servers.manager.power(server_id, "stop")
    assert result["exitCode"] == 137
    assert "> please stop" in await output_of(servers, server_id)
    assert "crashed" not in (await servers.status_names(server_id))


async def test_stop_with_a_signal_uses_the_signal(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    result = await servers.manager.power(server_id, "stop", signal="SIGTERM", grace=10)
    assert result["status"] == "exited"
    assert "Stopping (signal)" in await output_of(servers, server_id)


async def test_restart_runs_the_game_again(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    result = await servers.manager.power(server_id, "restart")
    assert result["status"] == "running"
    statuses = await servers.status_names(server_id)
    assert statuses.count("starting") == 2 and statuses[-1] == "running"
    assert "crashed" not in statuses


async def test_kill_stops_at_once_and_is_not_a_crash(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    await servers.manager.power(server_id, "kill")
    last = (await servers.statuses(server_id))[-1]
    assert (last.status, last.reason) == ("stopped", "killed")
    await asyncio.sleep(1.5)  # a crash restart would have come by now
    assert not (await servers.runtime.status(server_id)).running
    with pytest.raises(CommandFailedError, match="is not running"):
        await servers.manager.power(server_id, "kill")


async def test_start_of_a_stopped_server_reaches_running(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    await servers.manager.power(server_id, "stop")
    result = await servers.manager.power(server_id, "start")
    assert result["status"] == "running"
    assert (await servers.runtime.status(server_id)).running


async def test_a_second_power_action_while_one_runs_is_refused(
    servers: Servers, server_id: str
) -> None:
    spec = servers.spec(server_id, stop={"command": "ignored", "timeout": 2})
    await servers.manager.create(spec)
    stopping = asyncio.create_task(servers.manager.power(server_id, "stop"))
    await servers.wait_status(server_id, "stopping")
    for action in ("start", "restart", "kill", "stop"):
        with pytest.raises(PowerBusyError, match="another power action is in progress"):
            await servers.manager.power(server_id, action)
    with pytest.raises(PowerBusyError):
        await servers.manager.delete(server_id)
    assert (await stopping)["exitCode"] == 137


async def test_delete_leaves_no_container_files_or_spec(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id))
    volume = servers.store.volume_dir(server_id)
    (volume / "world.dat").write_text("precious")
    result = await servers.manager.delete(server_id)
    assert result == {"serverId": server_id, "deleted": True, "filesKept": False}
    assert not await servers.exists(server_id)
    assert not volume.exists()
    assert not servers.store.spec_path(server_id).exists()


async def test_delete_can_keep_the_files(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id, startOnCompletion=False))
    volume = servers.store.volume_dir(server_id)
    (volume / "world.dat").write_text("precious")
    await servers.manager.delete(server_id, keep_files=True)
    assert not await servers.exists(server_id)
    assert (volume / "world.dat").read_text() == "precious"


async def test_creating_a_server_twice_is_refused(servers: Servers, server_id: str) -> None:
    spec = servers.spec(server_id, startOnCompletion=False)
    await servers.manager.create(spec)
    with pytest.raises(CommandFailedError, match="already exists"):
        await servers.manager.create(spec)
    assert await servers.exists(server_id)


async def test_reinstall_keeps_files_and_recreates_the_container(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    volume = servers.store.volume_dir(server_id)
    (volume / "world.dat").write_text("precious")
    before = (await servers.runtime.status(server_id)).started_at
    spec = servers.spec(server_id, install=install_step(servers, "echo again >> installs.txt"))
    result = await servers.manager.reinstall(spec)
    assert result["status"] == "running"
    assert (volume / "world.dat").read_text() == "precious"
    assert (volume / "installs.txt").read_text() == "again\n"
    assert (await servers.runtime.status(server_id)).started_at != before
    statuses = await servers.status_names(server_id)
    assert statuses[-5:] == ["stopping", "stopped", "installing", "starting", "running"]


async def test_install_failure_reports_the_log_tail_and_leaves_nothing(
    servers: Servers, server_id: str
) -> None:
    script = "echo downloading; echo 'checksum mismatch for game.jar' >&2; exit 7"
    spec = servers.spec(server_id, install=install_step(servers, script))
    with pytest.raises(CommandFailedError, match="exit code 7") as failure:
        await servers.manager.create(spec)
    assert "checksum mismatch for game.jar" in str(failure.value)
    last = (await servers.statuses(server_id))[-1]
    assert last.status == "install_failed"
    assert last.reason is not None and "checksum mismatch" in last.reason
    assert (await servers.stages(server_id))[-1].stage == "failed"
    assert not await servers.exists(server_id)
    assert not servers.store.volume_dir(server_id).exists()
    assert not servers.store.spec_path(server_id).exists()
    assert "checksum mismatch" in servers.store.install_log(server_id).read_text()
    assert [s.server_id for s in await servers.runtime.list_managed()] == []


async def test_stats_are_published_about_every_interval(servers: Servers, server_id: str) -> None:
    await servers.manager.create(servers.spec(server_id, startOnCompletion=False))
    (servers.store.volume_dir(server_id) / "world.dat").write_bytes(b"x" * 50_000)
    await servers.manager.power(server_id, "start")

    async def sampled() -> bool:
        events = [e for e in await servers.events() if e.type == "server.metrics"]
        return len(events) >= 2

    await eventually(sampled, seconds=20)
    metrics = [e.data for e in await servers.events() if e.type == "server.metrics"]
    assert metrics[-1]["memory"] > 0 and metrics[-1]["uptime"] >= 0
    assert metrics[-1]["disk"] >= 50_000


async def test_an_install_past_its_timeout_is_stopped_and_fails(
    servers: Servers, server_id: str
) -> None:
    step = {"image": servers.install_image, "script": "echo starting; sleep 30", "timeout": 1}
    with pytest.raises(CommandFailedError, match="ran longer than 1s"):
        await servers.manager.create(servers.spec(server_id, install=step))
    assert [s.server_id for s in await servers.runtime.list_managed()] == []
    assert (await servers.status_names(server_id))[-1] == "install_failed"


async def test_a_server_past_its_disk_limit_does_not_start(
    servers: Servers, server_id: str
) -> None:
    spec = servers.spec(server_id, limits={"memoryMb": 128, "diskMb": 16}, startOnCompletion=False)
    await servers.manager.create(spec)
    with (servers.store.volume_dir(server_id) / "huge.dat").open("wb") as handle:
        handle.truncate(17 << 20)
    with pytest.raises(CommandFailedError, match="of its 16 MiB disk limit"):
        await servers.manager.power(server_id, "start")
    assert not (await servers.runtime.status(server_id)).running
    (servers.store.volume_dir(server_id) / "huge.dat").unlink()
    assert (await servers.manager.power(server_id, "start"))["status"] == "running"


async def test_growing_past_the_disk_limit_while_running_alerts_once(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id, limits={"memoryMb": 128, "diskMb": 16}))
    with (servers.store.volume_dir(server_id) / "huge.dat").open("wb") as handle:
        handle.truncate(17 << 20)

    async def alerted() -> bool:
        return len(await servers.alerts(server_id)) == 1

    await eventually(alerted)
    await asyncio.sleep(1.2)  # more samples over the limit: still one alert
    [alert] = await servers.alerts(server_id)
    assert "over its disk limit" in alert.message


async def test_a_flooding_install_cannot_fill_the_disk_with_its_log(
    process_servers: Servers, server_id: str
) -> None:
    servers = process_servers
    step = {"image": "unused", "script": "seq 1 50000; echo 'last line'; exit 1"}
    spec = servers.spec(server_id, install=step)
    log = servers.store.install_log(server_id)
    with pytest.raises(CommandFailedError, match="last line"):
        await run_install(
            servers.runtime,
            spec,
            servers.store.volume_dir(server_id),
            log,
            lambda _: asyncio.sleep(0),
            log_limit=10_000,
        )
    text = log.read_text()
    assert len(text) < 10_200 and text.endswith("the rest is not kept]\n")
