"""The daemon's entry points: standalone over real HTTP, embedded without a socket of its own."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import httpx
import pytest

from stellarstack import __version__
from stellarstack.broker import MemoryBroker
from stellarstack.daemon import DaemonService, run_daemon
from stellarstack.serve import PortInUse
from stellarstack.settings import DaemonSettings
from tests.support.services import DockerEngine, free_port


def settings_for(tmp_path: Path, port: int, node_id: str | None = "n-http") -> DaemonSettings:
    """Settings for a daemon listening on loopback only."""
    return DaemonSettings(
        data_dir=tmp_path / "daemon",
        node_id=node_id,
        runtime="process",
        host="127.0.0.1",
        port=port,
        heartbeat_interval=0.2,
    )


async def get_health(url: str, seconds: float = 15.0) -> httpx.Response:
    """GET /health, retrying while the server is still starting."""
    async with httpx.AsyncClient(timeout=2.0) as client, asyncio.timeout(seconds):
        while True:
            try:
                return await client.get(f"{url}/health")
            except httpx.TransportError:
                await asyncio.sleep(0.05)


async def test_the_standalone_daemon_answers_health_over_http_and_stops_on_cancel(
    tmp_path: Path,
) -> None:
    port = free_port()
    broker = MemoryBroker()
    before = asyncio.all_tasks()
    task = asyncio.create_task(run_daemon(settings_for(tmp_path, port), broker))
    try:
        response = await get_health(f"http://127.0.0.1:{port}")
        assert response.status_code == 200
        assert response.json() == {
            "status": "healthy",
            "version": __version__,
            "runtime": "process",
            "nodeId": "n-http",
        }
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await broker.close()
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


async def test_a_busy_port_fails_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = MemoryBroker()
        with pytest.raises(PortInUse, match=str(port)):
            await run_daemon(settings_for(tmp_path, port), broker)
        await broker.close()
    assert not (tmp_path / "daemon").exists()


async def test_the_embedded_service_runs_without_a_socket_and_reports_health(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    node_id = f"n-{uuid.uuid4().hex[:6]}"
    service = DaemonService(settings_for(tmp_path, 1, node_id=node_id), broker)
    transport = httpx.ASGITransport(app=service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
        assert (await client.get("/health")).status_code == 503
        await service.start()
        try:
            healthy = await client.get("/health")
            assert healthy.status_code == 200
            assert healthy.json()["nodeId"] == node_id
        finally:
            await service.stop()
        stopped = await client.get("/health")
    assert stopped.status_code == 503
    assert stopped.json() == {
        "status": "degraded",
        "version": __version__,
        "runtime": None,
        "nodeId": node_id,
    }
    await broker.close()


async def test_health_names_the_docker_runtime_when_the_engine_is_used(
    tmp_path: Path, docker_engine: DockerEngine
) -> None:
    settings = settings_for(tmp_path, 1).model_copy(
        update={"runtime": "docker", "docker_host": docker_engine.host}
    )
    broker = MemoryBroker()
    service = DaemonService(settings, broker)
    await service.start()
    try:
        transport = httpx.ASGITransport(app=service.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            body = (await client.get("/health")).json()
        assert body["status"] == "healthy" and body["runtime"] == "docker"
    finally:
        await service.stop()
        await broker.close()
