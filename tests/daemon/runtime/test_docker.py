"""The Docker runtime against a real engine: limits, loopback ports, output, input, stop, kill."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from stellarstack.daemon.runtime import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerSpec,
    ContainerStatus,
    DockerRuntime,
    OutputLine,
    PortBinding,
)
from stellarstack.daemon.runtime.docker import LABEL_SERVER_ID
from tests.daemon.waiting import collect_until
from tests.support.services import DockerEngine, free_port

ECHO_LOOP = "echo ready; echo oops >&2; while read line; do echo got:$line; done"


def busybox(engine: DockerEngine, server_id: str, script: str, **options: Any) -> ContainerSpec:
    """A spec running `script` with busybox sh in the local test image."""
    return ContainerSpec(
        server_id=server_id, image=engine.image, command=("sh", "-c", script), **options
    )


async def inspect(engine: DockerEngine, server_id: str) -> dict[str, object]:
    """The engine's own view of the container (not through the runtime under test)."""
    async with aiodocker.Docker(url=engine.host) as docker:
        container = await docker.containers.get(DockerRuntime.container_name(server_id))
        info: dict[str, object] = await container.show()
        return info


async def test_container_is_created_with_limits_labels_and_loopback_ports(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    port = free_port()
    spec = busybox(
        docker_engine,
        server_id,
        "sleep 600",
        memory_limit=64 << 20,
        cpu_limit=0.5,
        pids_limit=32,
        ports=(PortBinding("127.0.0.1", port), PortBinding("127.0.0.1", port, protocol="udp")),
        volume_dir=server_dir,
        env={"SERVER_PORT": str(port)},
        labels={"example": "yes"},
        user="1000:1000",
    )
    state = await docker_runtime.create(spec)
    assert state.status is ContainerStatus.CREATED and state.exit_code is None
    info = await inspect(docker_engine, server_id)
    host = info["HostConfig"]
    assert isinstance(host, dict)
    assert host["Memory"] == 64 << 20 and host["MemorySwap"] == 64 << 20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 32
    assert host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"]
    assert {"net_raw", "mknod", "setpcap"} <= {cap.lower() for cap in host["CapDrop"]}
    assert host["Binds"] == [f"{server_dir}:/home/container"]
    bindings = host["PortBindings"]
    assert bindings == {
        f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
        f"{port}/udp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
    }
    config = info["Config"]
    assert isinstance(config, dict)
    assert config["Labels"][LABEL_SERVER_ID] == server_id
    assert config["Labels"]["example"] == "yes"
    assert f"SERVER_PORT={port}" in config["Env"]
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/home/container"
    await docker_runtime.start(server_id)
    running = await inspect(docker_engine, server_id)
    network = running["NetworkSettings"]
    assert isinstance(network, dict)
    published = [b for bs in network["Ports"].values() for b in bs or []]
    assert published and all(b["HostIp"] == "127.0.0.1" for b in published)


async def test_output_streams_and_input_reaches_the_containers_stdin(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    await docker_runtime.create(busybox(docker_engine, server_id, ECHO_LOOP))
    async with await docker_runtime.attach(server_id) as output:
        await docker_runtime.start(server_id)
        # stdout and stderr are separate pipes: their relative order is not guaranteed
        seen: set[str] = set()
        first = await collect_until(
            output, lambda line: bool(seen.add(line.text)) or {"ready", "oops"} <= seen
        )
        assert OutputLine("stdout", "ready") in first
        assert OutputLine("stderr", "oops") in first
        await docker_runtime.send_input(server_id, "say <b>hi</b>\n")
        await docker_runtime.send_input(server_id, "second\n")
        echoed = await collect_until(output, lambda line: line.text == "got:second")
        assert OutputLine("stdout", "got:say <b>hi</b>") in echoed
    history = await docker_runtime.logs(server_id, tail=2)
    assert [line.text for line in history] == ["got:say <b>hi</b>", "got:second"]
    assert {line.text for line in await docker_runtime.logs(server_id)} >= {"ready", "oops"}


async def test_files_written_in_the_container_land_in_the_volume_directory(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    spec = busybox(docker_engine, server_id, "pwd > where.txt", volume_dir=server_dir)
    await docker_runtime.create(spec)
    await docker_runtime.start(server_id)
    state = await docker_runtime.wait(server_id)
    assert state.status is ContainerStatus.EXITED and state.exit_code == 0
    assert (server_dir / "where.txt").read_text() == "/home/container\n"


async def test_stop_sends_the_signal_and_an_obedient_server_exits(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    await docker_runtime.create(busybox(docker_engine, server_id, "exec sleep 600"))
    await docker_runtime.start(server_id)
    state = await docker_runtime.stop(server_id, signal="SIGTERM", grace=20)
    assert state.status is ContainerStatus.EXITED
    assert state.exit_code == 128 + signal.SIGTERM
    assert state.started_at is not None and state.finished_at is not None
    assert state.finished_at >= state.started_at


async def test_stop_kills_a_server_that_ignores_the_signal_after_the_grace_period(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    script = "trap '' TERM; echo up; while true; do sleep 1; done"
    await docker_runtime.create(busybox(docker_engine, server_id, script))
    async with await docker_runtime.attach(server_id) as output:
        await docker_runtime.start(server_id)
        await collect_until(output, lambda line: line.text == "up")
    state = await docker_runtime.stop(server_id, signal="SIGTERM", grace=1)
    assert state.status is ContainerStatus.EXITED
    assert state.exit_code == 128 + signal.SIGKILL
    # Stopping a stopped server is a no-op; killing it is a conflict.
    assert (await docker_runtime.stop(server_id, grace=1)).exit_code == 128 + signal.SIGKILL
    with pytest.raises(ContainerConflictError):
        await docker_runtime.kill(server_id)


async def test_stats_report_the_memory_limit_and_processes(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    spec = busybox(docker_engine, server_id, "exec sleep 600", memory_limit=48 << 20)
    await docker_runtime.create(spec)
    await docker_runtime.start(server_id)
    stats = await docker_runtime.stats(server_id)
    assert stats.memory_limit_bytes == 48 << 20
    assert 0 < stats.memory_bytes < 48 << 20
    assert stats.pids >= 1
    assert stats.cpu_percent >= 0


async def test_remove_forgets_the_container_and_unknown_ids_are_not_found(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    await docker_runtime.create(busybox(docker_engine, server_id, "exec sleep 600"))
    with pytest.raises(ContainerConflictError):
        await docker_runtime.create(busybox(docker_engine, server_id, "true"))
    await docker_runtime.start(server_id)
    managed = await docker_runtime.list_managed()
    assert [(s.server_id, s.status) for s in managed] == [(server_id, ContainerStatus.RUNNING)]
    await docker_runtime.remove(server_id)
    assert await docker_runtime.list_managed() == []
    for call in (docker_runtime.status, docker_runtime.start, docker_runtime.remove):
        with pytest.raises(ContainerNotFoundError):
            await call(server_id)


async def test_list_managed_ignores_containers_of_other_nodes(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    other = DockerRuntime(docker_engine.host, node_id="someone-else")
    try:
        await other.create(busybox(docker_engine, server_id, "true"))
        assert await docker_runtime.list_managed() == []
        assert [s.server_id for s in await other.list_managed()] == [server_id]
    finally:
        await other.remove(server_id)
        await other.close()
