"""The daemon client on real sockets: answers, refusals, silence, identity, the circuit breaker.

TLS verification with the panel CA and the node id runs against a real daemon in
`tests/daemon/test_registration.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from stellarstack.panel.daemon_client import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    DaemonClient,
    DaemonUnavailable,
)
from stellarstack.panel.domain.nodes.daemon_client import daemon_health
from tests.support.services import free_port


@dataclass
class FakeNode:
    """Where a daemon listens (the fields of a Node row the client reads)."""

    port: int
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    scheme: str = "http"
    fqdn: str = "127.0.0.1"


@dataclass
class DaemonStub:
    """A real TCP server that answers /health, or accepts and stays silent."""

    silent: bool = False
    node_id: str = "n"
    hits: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits += 1
        await reader.readuntil(b"\r\n\r\n")
        if self.silent:
            await asyncio.sleep(30)
        body = json.dumps(
            {"status": "healthy", "version": "0.1.0", "nodeId": self.node_id}
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[DaemonStub, FakeNode]]:
    """A listening stub daemon and the node that points at it."""
    daemon = DaemonStub()
    port = free_port()
    daemon.server = await asyncio.start_server(daemon.handle, "127.0.0.1", port)
    yield daemon, FakeNode(port)
    daemon.server.close()


@pytest.fixture
async def client() -> AsyncIterator[DaemonClient]:
    """A client with a short timeout and a breaker that opens after two failures."""
    instance = DaemonClient(timeout=0.3, failures_to_open=2, reset_after=0.5)
    yield instance
    await instance.aclose()


async def test_a_healthy_daemon_answers_its_health(
    client: DaemonClient, stub: tuple[DaemonStub, FakeNode]
) -> None:
    _, node = stub
    assert (await client.health(node))["status"] == "healthy"
    assert client.breaker(node.id).state is BreakerState.CLOSED


async def test_a_refused_connection_opens_the_breaker_and_then_calls_fail_fast(
    client: DaemonClient,
) -> None:
    node = FakeNode(free_port())  # nothing listens there
    for _ in range(2):
        with pytest.raises(DaemonUnavailable):
            await client.health(node)
    started = time.perf_counter()
    with pytest.raises(CircuitOpen) as refused:
        await client.health(node)
    assert time.perf_counter() - started < 0.01
    assert 0 < refused.value.retry_after <= 0.5


async def test_a_silent_daemon_costs_only_the_timeout_and_then_nothing(
    client: DaemonClient, stub: tuple[DaemonStub, FakeNode]
) -> None:
    daemon, node = stub
    daemon.silent = True
    started = time.perf_counter()
    for _ in range(2):
        with pytest.raises(DaemonUnavailable, match="did not answer"):
            await client.health(node)
    assert time.perf_counter() - started < 2
    hits = daemon.hits
    with pytest.raises(CircuitOpen):
        await client.health(node)
    assert daemon.hits == hits  # the open breaker touched no socket


async def test_after_the_reset_time_one_probe_closes_the_breaker_when_the_daemon_is_back(
    client: DaemonClient, stub: tuple[DaemonStub, FakeNode]
) -> None:
    daemon, node = stub
    daemon.silent = True
    for _ in range(2):
        with pytest.raises(DaemonUnavailable):
            await client.health(node)
    assert client.breaker(node.id).state is BreakerState.OPEN
    await asyncio.sleep(0.55)
    assert client.breaker(node.id).state is BreakerState.HALF_OPEN
    daemon.silent = False
    assert (await client.health(node))["status"] == "healthy"
    assert client.breaker(node.id).state is BreakerState.CLOSED


def test_a_failed_probe_opens_the_breaker_again_and_only_one_probe_goes_out() -> None:
    now = [0.0]
    breaker = CircuitBreaker(3, 10, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and breaker.retry_after == 10
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state.value == "closed" and breaker.allow()


def test_breakers_are_per_node() -> None:
    client = DaemonClient(failures_to_open=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    client.breaker(a).record_failure()
    assert client.breaker(a).state == BreakerState.OPEN
    assert client.breaker(b).state is BreakerState.CLOSED


async def test_a_daemon_claiming_another_node_id_is_reachable_but_not_trusted(
    client: DaemonClient, stub: tuple[DaemonStub, FakeNode]
) -> None:
    daemon, node = stub
    daemon.node_id = "x" * 500  # hostile: long, and not this node
    health = await daemon_health(client, node)
    assert health.reachable and not health.trusted and health.status is None
    assert health.error is not None and len(health.error) < 200


async def test_plain_http_answers_are_never_called_trusted(
    client: DaemonClient, stub: tuple[DaemonStub, FakeNode]
) -> None:
    daemon, node = stub
    daemon.node_id = str(node.id)
    health = await daemon_health(client, node)
    assert (health.reachable, health.trusted, health.status) == (True, False, "healthy")
    assert health.node_id == str(node.id) and health.error and "HTTP" in health.error


async def test_forgetting_a_node_drops_its_open_breaker(client: DaemonClient) -> None:
    node = FakeNode(free_port())
    for _ in range(2):
        with pytest.raises(DaemonUnavailable):
            await client.health(node)
    assert client.breaker(node.id).state is BreakerState.OPEN
    await client.forget(node.id)
    assert client.breaker(node.id).state is BreakerState.CLOSED
