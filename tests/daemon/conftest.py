"""Fixtures for daemon tests: runtimes that clean up after themselves, unique server ids."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stellarstack.daemon.runtime import DockerRuntime, ProcessRuntime
from tests.support.panel import stop_leftover_servers
from tests.support.services import DockerEngine


@pytest.fixture(autouse=True)
def _no_leftover_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Process-runtime servers outlive their daemon by design: stop a test's own at its end."""
    used = "tmp_path" in request.fixturenames
    path: Path | None = request.getfixturevalue("tmp_path") if used else None
    yield
    if path is not None:
        stop_leftover_servers(path)


@pytest.fixture
def server_id() -> str:
    """A server id no other test uses (containers on a shared engine must not collide)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    """An empty directory for a server's files."""
    path = tmp_path / "server"
    path.mkdir()
    return path


@pytest.fixture
async def process_runtime() -> AsyncIterator[ProcessRuntime]:
    """A process runtime whose servers are stopped at the end of the test."""
    runtime = ProcessRuntime(close_grace=2.0)
    yield runtime
    await runtime.close()


@pytest.fixture
async def docker_runtime(docker_engine: DockerEngine) -> AsyncIterator[DockerRuntime]:
    """A Docker runtime labelling containers with a per-test node id, all removed at the end."""
    runtime = DockerRuntime(docker_engine.host, node_id=f"test-{uuid.uuid4().hex[:8]}")
    yield runtime
    for state in await runtime.list_managed():
        await runtime.remove(state.server_id)
    await runtime.close()
