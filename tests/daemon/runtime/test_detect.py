"""Runtime detection: Docker when it answers or is demanded, else local processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stellarstack.daemon.runtime import (
    DockerRuntime,
    ProcessRuntime,
    RuntimeUnavailableError,
    detect_runtime,
)
from stellarstack.settings import DaemonSettings
from tests.support.services import DockerEngine

NO_ENGINE = "unix:///nonexistent/stellar-test/docker.sock"


async def test_process_mode_never_touches_docker() -> None:
    runtime = await detect_runtime("process", docker_host=NO_ENGINE)
    assert isinstance(runtime, ProcessRuntime)
    await runtime.close()


async def test_auto_falls_back_to_processes_when_no_engine_answers() -> None:
    runtime = await detect_runtime("auto", docker_host=NO_ENGINE)
    assert isinstance(runtime, ProcessRuntime)
    await runtime.close()


async def test_docker_mode_without_an_engine_is_an_error() -> None:
    with pytest.raises(RuntimeUnavailableError):
        await detect_runtime("docker", docker_host=NO_ENGINE)


async def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, docker or process"):
        await detect_runtime("podman")


@pytest.mark.parametrize("mode", ["auto", "docker"])
async def test_docker_is_chosen_when_the_engine_answers(
    docker_engine: DockerEngine, mode: str
) -> None:
    runtime = await detect_runtime(mode, docker_host=docker_engine.host)
    try:
        assert isinstance(runtime, DockerRuntime)
        await runtime.ping()
    finally:
        await runtime.close()


async def test_a_process_runtime_with_a_state_dir_keeps_its_records_there(tmp_path: Path) -> None:
    runtime = await detect_runtime("auto", docker_host=NO_ENGINE, state_dir=tmp_path / "procs")
    assert isinstance(runtime, ProcessRuntime)
    assert runtime.state_dir == (tmp_path / "procs").resolve()
    await runtime.close()
    assert (tmp_path / "procs").is_dir()  # a persistent state dir outlives the runtime


async def test_an_ephemeral_process_runtime_removes_its_records_on_close() -> None:
    runtime = await detect_runtime("process")
    assert isinstance(runtime, ProcessRuntime)
    await runtime.close()
    assert not runtime.state_dir.exists()


def test_daemon_settings_refuse_root_as_the_install_user() -> None:
    for user in ("0", "0:0", "root", "1000:0", "-1"):
        with pytest.raises(ValidationError):
            DaemonSettings(runtime_install_user=user)
    assert DaemonSettings(runtime_install_user="988:988").runtime_install_user == "988:988"
