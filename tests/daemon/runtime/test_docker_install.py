"""Pulls and install containers on a real engine: no-op pulls, clear failures, unprivileged runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from stellarstack.daemon.runtime import (
    ContainerSpec,
    DockerRuntime,
    ImagePullError,
    InvalidSpecError,
    OutputLine,
)
from stellarstack.daemon.runtime.docker import LABEL_NODE_ID
from stellarstack.daemon.runtime.install import LABEL_ROLE, install_container_name
from stellarstack.daemon.runtime.pull import PullTracker, pull_reason
from tests.support.services import DockerEngine


@pytest.fixture
async def runtime(docker_engine: DockerEngine) -> AsyncIterator[DockerRuntime]:
    """A Docker runtime whose pulls give up after 5 s without progress."""
    docker = DockerRuntime(
        docker_engine.host, node_id=f"test-{uuid.uuid4().hex[:8]}", pull_stall_timeout=5.0
    )
    yield docker
    await docker.close()


def install(engine: DockerEngine, server_id: str, directory: Path, script: str) -> ContainerSpec:
    """An install step running `script` with busybox sh."""
    return ContainerSpec(
        server_id=server_id, image=engine.image, command=("sh", "-c", script), volume_dir=directory
    )


async def install_containers(engine: DockerEngine, runtime: DockerRuntime) -> list[str]:
    """Names of the runtime's install containers (seen directly by the engine, not through it)."""
    node = runtime.node_id
    async with aiodocker.Docker(url=engine.host) as docker:
        wanted = [f"{LABEL_ROLE}=install", f"{LABEL_NODE_ID}={node}"]
        found = await docker.containers.list(all=True, filters={"label": wanted})
        return [c["Names"][0] for c in found]


async def test_pulling_a_present_image_is_a_no_op_that_reports_done(
    docker_engine: DockerEngine, runtime: DockerRuntime
) -> None:
    reports: list[tuple[float, str]] = []

    async def progress(fraction: float, message: str) -> None:
        reports.append((fraction, message))

    started = time.monotonic()
    await runtime.pull(docker_engine.image, progress)
    assert time.monotonic() - started < 2
    assert reports == [(1.0, f"{docker_engine.image} is present on this node")]


async def test_pulling_an_unreachable_image_fails_fast_with_the_reason(
    runtime: DockerRuntime,
) -> None:
    started = time.monotonic()
    with pytest.raises(ImagePullError, match=r"cannot pull .*nothing-here:1\.0: ") as caught:
        await runtime.pull("registry.invalid/stellarstack/nothing-here:1.0")
    assert time.monotonic() - started < 10
    reason = str(caught.value)
    assert "registry unreachable" in reason or "image not found" in reason, reason


@pytest.mark.parametrize(
    "image",
    ["", "Busybox", "../busybox", "busy box", "busybox;rm -rf /", "a" * 600, "bad\x00name", "x:"],
)
async def test_malformed_image_references_are_refused_before_the_engine_sees_them(
    runtime: DockerRuntime, image: str
) -> None:
    with pytest.raises(ImagePullError, match="invalid image reference"):
        await runtime.pull(image)


async def test_install_runs_unprivileged_in_mnt_server_and_returns_its_exit_code(
    docker_engine: DockerEngine, runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    lines: list[OutputLine] = []

    async def collect(line: OutputLine) -> None:
        lines.append(line)

    script = (
        "echo uid=$(id -u); pwd; echo oops >&2; echo installed > /mnt/server/game.txt;"
        " grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; exit 3"
    )
    code = await runtime.run_once(
        install(docker_engine, server_id, server_dir, script), timeout=60, on_output=collect
    )
    assert code == 3
    texts = [line.text for line in lines]
    assert "uid=1000" in texts
    assert "/mnt/server" in texts
    assert OutputLine("stderr", "oops") in lines
    assert any(t.split() == ["CapEff:", "0000000000000000"] for t in texts), texts
    assert any(t.split() == ["NoNewPrivs:", "1"] for t in texts), texts
    assert (server_dir / "game.txt").read_text() == "installed\n"
    assert await install_containers(docker_engine, runtime) == []
    assert await runtime.list_managed() == []


async def test_an_install_past_its_budget_is_killed_removed_and_times_out(
    docker_engine: DockerEngine, runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 1\.5 s"):
        await runtime.run_once(
            install(docker_engine, server_id, server_dir, "echo begin; sleep 600"), timeout=1.5
        )
    assert time.monotonic() - started < 8
    assert await install_containers(docker_engine, runtime) == []


async def test_a_cancelled_install_leaves_no_container(
    docker_engine: DockerEngine, runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    seen = asyncio.Event()

    async def begun(line: OutputLine) -> None:
        seen.set()

    task = asyncio.create_task(
        runtime.run_once(
            install(docker_engine, server_id, server_dir, "echo begin; sleep 600"),
            timeout=60,
            on_output=begun,
        )
    )
    async with asyncio.timeout(15):
        await seen.wait()
    assert await install_containers(docker_engine, runtime) == [
        f"/{install_container_name(server_id)}"
    ]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await install_containers(docker_engine, runtime) == []


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
async def test_install_budgets_must_be_positive_and_finite(
    docker_engine: DockerEngine,
    runtime: DockerRuntime,
    server_id: str,
    server_dir: Path,
    timeout: float,
) -> None:
    with pytest.raises(InvalidSpecError, match="timeout must be a positive number"):
        await runtime.run_once(
            install(docker_engine, server_id, server_dir, "true"), timeout=timeout
        )
    assert not (server_dir / "game.txt").exists()


@pytest.mark.parametrize("user", ["0", "0:0", "root", "1000:0", "www-data"])
async def test_installs_refuse_to_run_as_root_or_an_unresolvable_user(
    docker_engine: DockerEngine,
    runtime: DockerRuntime,
    server_id: str,
    server_dir: Path,
    user: str,
) -> None:
    spec = ContainerSpec(
        server_id=server_id,
        image=docker_engine.image,
        command=("id",),
        volume_dir=server_dir,
        user=user,
    )
    with pytest.raises(InvalidSpecError, match="install"):
        await runtime.run_once(spec, timeout=30)
    assert await install_containers(docker_engine, runtime) == []


async def test_an_install_image_missing_locally_is_a_pull_error(
    runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    spec = ContainerSpec(
        server_id=server_id,
        image="stellarstack-test/never-built:1",
        command=("true",),
        volume_dir=server_dir,
    )
    with pytest.raises(ImagePullError, match="not present on this node"):
        await runtime.run_once(spec, timeout=30)


def test_hostile_server_ids_and_environment_are_refused_by_the_spec(server_dir: Path) -> None:
    for server_id in ("../etc", "a/../../b", "..", "/abs", "x\x00y", "a" * 200):
        with pytest.raises(InvalidSpecError, match="server id"):
            ContainerSpec(server_id=server_id, image="busybox", volume_dir=server_dir)
    with pytest.raises(InvalidSpecError, match="NUL"):
        ContainerSpec(server_id="ok", image="busybox", env={"A": "x\x00y"})
    with pytest.raises(InvalidSpecError, match="variable name"):
        ContainerSpec(server_id="ok", image="busybox", env={"A=B": "x"})


def test_huge_environment_values_are_refused_by_the_spec() -> None:
    with pytest.raises(InvalidSpecError, match="too large"):
        ContainerSpec(server_id="ok", image="busybox", env={"BIG": "x" * (200 * 1024)})
    many = {f"V{i}": "x" * 100_000 for i in range(12)}
    with pytest.raises(InvalidSpecError, match="too large"):
        ContainerSpec(server_id="ok", image="busybox", env=many)


def test_pull_progress_counts_bytes_across_layers_and_reads_engine_errors() -> None:
    tracker = PullTracker("example/game:1")
    assert tracker.feed({"status": "Pulling from example/game", "id": "1"}) is None
    tracker.feed({"status": "Pulling fs layer", "id": "a"})
    first = tracker.feed(
        {"status": "Downloading", "id": "a", "progressDetail": {"current": 50, "total": 100}}
    )
    assert first is not None and first[0] == pytest.approx(0.25)
    assert "0.0 MB of 0.0 MB" in first[1]
    tracker.feed(
        {"status": "Downloading", "id": "b", "progressDetail": {"current": 0, "total": 300}}
    )
    done = tracker.feed({"status": "Pull complete", "id": "a"})
    assert done is not None and done[0] == pytest.approx(200 / 800)
    last = tracker.feed({"status": "Pull complete", "id": "b"})
    assert last is not None and last[0] == 1.0
    with pytest.raises(ImagePullError, match="image not found"):
        tracker.feed({"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}})
    assert pull_reason("Get https://r/v2/: dial tcp: lookup r: no such host") == (
        "registry unreachable"
    )
    assert pull_reason("Cannot connect to Docker Engine via unix:///x.sock") == (
        "Docker Engine unreachable"
    )


async def test_a_pull_without_an_engine_says_the_engine_is_unreachable(tmp_path: Path) -> None:
    runtime = DockerRuntime(f"unix://{tmp_path}/no-docker.sock")
    try:
        with pytest.raises(ImagePullError, match="Docker Engine unreachable"):
            await runtime.pull("busybox:latest")
    finally:
        await runtime.close()


async def test_the_server_runs_as_the_install_user_and_can_change_what_the_install_wrote(
    docker_engine: DockerEngine, runtime: DockerRuntime, server_id: str, server_dir: Path
) -> None:
    (server_dir / "from-the-daemon.txt").write_text("root wrote this\n")
    script = "mkdir -p world && echo v1 > world/level.dat && echo v1 > server.properties"
    assert (
        await runtime.run_once(install(docker_engine, server_id, server_dir, script), timeout=60)
        == 0
    )
    spec = ContainerSpec(
        server_id=server_id,
        image=docker_engine.image,
        command=(
            "sh",
            "-c",
            "id -u > uid; echo v2 >> world/level.dat; echo v2 > server.properties",
        ),
        volume_dir=server_dir,
    )
    await runtime.create(spec)
    try:
        await runtime.start(server_id)
        state = await runtime.wait(server_id)
    finally:
        await runtime.remove(server_id)
    assert state.exit_code == 0
    assert (server_dir / "uid").read_text() == "1000\n"
    assert (server_dir / "world" / "level.dat").read_text() == "v1\nv2\n"
    assert (server_dir / "server.properties").read_text() == "v2\n"
    assert {p.stat().st_uid for p in server_dir.rglob("*")} == {1000}
