"""Runtime detection: Docker when it answers or is demanded, else local processes."""

from __future__ import annotations

import pytest

from stellarstack.daemon.runtime import (
    DockerRuntime,
    ProcessRuntime,
    RuntimeUnavailableError,
    detect_runtime,
)
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
