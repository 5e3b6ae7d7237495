"""Ready checks: log pattern (time-boxed), TCP port, HTTP 2xx, and what a timeout does."""

from __future__ import annotations

import time

import pytest

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.servers.ready import LogMatcher
from tests.daemon.servers.conftest import Servers
from tests.support.services import free_port


def test_a_catastrophic_pattern_gives_up_instead_of_hanging() -> None:
    matcher = LogMatcher(r"(a+)+$")
    began = time.perf_counter()
    assert not matcher.matches("a" * 4000 + "b")
    assert time.perf_counter() - began < 2  # a plain `re` search would take ages


def test_a_pattern_that_does_not_compile_is_matched_literally() -> None:
    matcher = LogMatcher("Done (")
    assert matcher.matches('[12:00] Done (3.2s)! For help, type "help"')
    assert not matcher.matches("Loading")


@pytest.mark.parametrize(
    "ready",
    [
        {"type": "port", "timeout": 15},
        {"type": "http", "path": "/index.html", "timeout": 15},
        {"type": "log", "pattern": r"ready on port \d+", "timeout": 15},
    ],
)
async def test_each_ready_check_passes_when_the_game_is_up(
    servers: Servers, server_id: str, ready: dict[str, object]
) -> None:
    result = await servers.manager.create(servers.spec(server_id, ready=ready))
    assert result["status"] == "running"
    assert await servers.alerts(server_id) == []


async def test_a_ready_timeout_keeps_the_server_running_and_alerts(
    servers: Servers, server_id: str
) -> None:
    ready = {"type": "log", "pattern": "this line never comes", "timeout": 1}
    result = await servers.manager.create(servers.spec(server_id, ready=ready))
    assert result["status"] == "running"
    [alert] = await servers.alerts(server_id)
    assert alert.severity == "warning" and "did not pass its log ready check" in alert.message
    assert (await servers.status_names(server_id))[-1] == "running"


async def test_a_server_that_exits_while_starting_fails_the_start(
    process_servers: Servers, server_id: str
) -> None:
    spec = process_servers.spec(
        server_id, command=["sh", "-c", "echo boom; exit 5"], crash={"restart": False}
    )
    with pytest.raises(CommandFailedError, match="exited while starting: exit code 5"):
        await process_servers.manager.create(spec)
    await process_servers.wait_status(server_id, "crashed")
    assert await process_servers.exists(server_id)  # kept: the console shows why


async def test_an_http_check_wants_a_2xx_answer(process_servers: Servers, server_id: str) -> None:
    ready = {"type": "http", "path": "/no-such-page", "timeout": 1.5}
    result = await process_servers.manager.create(process_servers.spec(server_id, ready=ready))
    assert result["status"] == "running"
    [alert] = await process_servers.alerts(server_id)
    assert "did not pass its http ready check" in alert.message


async def test_a_udp_port_counts_as_ready_while_the_process_lives(
    process_servers: Servers, server_id: str
) -> None:
    port = free_port()
    spec = process_servers.spec(
        server_id,
        ports=[{"ip": "127.0.0.1", "port": port, "protocol": "udp", "primary": True}],
        env={"SERVER_PORT": str(free_port())},  # nothing answers on the udp port number
        ready={"type": "port", "timeout": 1},
    )
    assert (await process_servers.manager.create(spec))["status"] == "running"
    assert await process_servers.alerts(server_id) == []
