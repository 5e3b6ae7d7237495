"""`stellarstack daemon register` against a real panel over HTTP, then the daemon on TLS.

The panel runs in this process under uvicorn on a free port (SQLite); the daemon registers
with a real HTTP call, writes its config (0600), serves /health over TLS with the certificate
the panel signed, and the panel verifies it with its CA and the node id.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from stellarstack import __version__
from stellarstack.broker import MemoryBroker
from stellarstack.daemon import run_daemon
from stellarstack.daemon.registration import RegistrationError, register_node
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.auth.sessions import SESSION_COOKIE, create_session
from stellarstack.panel.daemon_client import DaemonClient, DaemonUntrusted
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.ca import NodeCA
from stellarstack.panel.domain.nodes.daemon_client import (
    daemon_health,
    node_ssl_context,
    node_tls_factory,
)
from stellarstack.serve import listen
from stellarstack.settings import DaemonSettings, PanelSettings
from tests.support.services import free_port

CSRF = "daemon-registration-csrf"


@dataclass
class RunningPanel:
    """A panel serving real HTTP, and an admin client for it."""

    url: str
    admin: httpx.AsyncClient
    database: Database
    data_dir: Path

    async def token(self, name: str) -> str:
        response = await self.admin.post("/api/v1/admin/nodes/token", json={"name": name})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["registrationToken"])


@pytest.fixture(scope="module")
async def panel(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningPanel]:
    directory = tmp_path_factory.mktemp("reg-panel")
    url = f"sqlite+aiosqlite:///{directory / 'panel.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    async with database.sessionmaker() as db:
        admin = await create_user(db, "admin@reg.test", "correct horse battery", role=Role.ADMIN)
        session = await create_session(db, admin, ip=None, user_agent=None)
        await db.commit()
    port = free_port()
    settings = PanelSettings(data_dir=directory, host="127.0.0.1", port=port)
    broker = MemoryBroker()
    listener = listen(create_app(settings, database=database, broker=broker), "127.0.0.1", port)
    serving = asyncio.create_task(listener.serve())
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base,
        cookies={SESSION_COOKIE: session, "stellar_csrf": CSRF},
        headers={"X-CSRF-Token": CSRF},
        timeout=10,
    ) as client:
        for _ in range(200):
            try:
                if (await client.get("/health")).status_code in (200, 503):
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        yield RunningPanel(base, client, database, directory)
    listener.server.should_exit = True
    await serving
    listener.sock.close()
    await broker.close()
    await database.dispose()


async def wait_for_health(url: str, context: object) -> httpx.Response:
    async with httpx.AsyncClient(verify=context, timeout=2) as client, asyncio.timeout(20):  # type: ignore[arg-type]
        while True:
            try:
                return await client.get(f"{url}/health")
            except httpx.ConnectError as exc:
                if "CERTIFICATE" in str(exc):
                    raise
                await asyncio.sleep(0.05)


async def test_register_writes_a_private_config_and_the_daemon_serves_verified_tls(
    panel: RunningPanel, tmp_path: Path
) -> None:
    token = await panel.token("tls-node")
    config = tmp_path / "etc" / "daemon.toml"
    daemon_port = free_port()
    done = await register_node(
        panel.url,
        token,
        config_file=config,
        data_dir=tmp_path / "data",
        hostname="127.0.0.1",
        port=daemon_port,
        listen_host="127.0.0.1",
    )
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE((config.parent / "node.key").stat().st_mode) == 0o600
    values = tomllib.loads(config.read_text())
    assert values["node_id"] == done.node_id
    assert values["api_token"].startswith("strk_node_")
    assert values["panel_url"] == panel.url
    assert "redis_url" not in values  # this panel has no Redis
    assert "BEGIN PUBLIC KEY" in Path(values["panel_public_key_file"]).read_text()

    settings = DaemonSettings.from_file(config, runtime="process", heartbeat_interval=5)
    assert settings.node_id == done.node_id and settings.tls_cert_file is not None
    broker = MemoryBroker()
    daemon = asyncio.create_task(run_daemon(settings, broker))
    ca_pem = Path(values["ca_file"]).read_text()
    url = f"https://127.0.0.1:{daemon_port}"
    try:
        health = await wait_for_health(url, node_ssl_context(ca_pem, done.node_id))
        assert health.json()["nodeId"] == done.node_id
        assert health.json()["version"] == __version__

        # the panel's one daemon client: CA + node id verified
        probe = await panel.admin.get(f"/api/v1/nodes/{done.node_id}/health")
        assert probe.status_code == 200, probe.text
        report = probe.json()["data"]
        assert (report["reachable"], report["trusted"], report["status"]) == (True, True, "healthy")
        assert report["nodeId"] == done.node_id and report["error"] is None
        assert report["version"] == __version__

        async with panel.database.sessionmaker() as db:
            node = await db.get(Node, uuid.UUID(done.node_id))
        assert node is not None
        # another node's name (same CA) and a foreign CA are both refused by the same client
        impostor = Node(
            id=uuid.uuid4(), name="impostor", scheme="https", fqdn="127.0.0.1", port=daemon_port
        )
        for client, target in (
            (DaemonClient(timeout=3, tls=node_tls_factory(ca_pem)), impostor),
            (
                DaemonClient(timeout=3, tls=node_tls_factory(NodeCA.generate().certificate_pem)),
                node,
            ),
        ):
            try:
                with pytest.raises(DaemonUntrusted, match="certificate"):
                    await daemon_health(client, target)
            finally:
                await client.aclose()
        # plain HTTP gets nothing out of the TLS port
        async with httpx.AsyncClient(timeout=3) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{daemon_port}/health")
    finally:
        daemon.cancel()
        with pytest.raises(asyncio.CancelledError):
            await daemon
        await broker.close()


async def test_a_token_registers_one_machine_only(panel: RunningPanel, tmp_path: Path) -> None:
    token = await panel.token("once")
    await register_node(panel.url, token, config_file=tmp_path / "a.toml", data_dir=tmp_path)
    with pytest.raises(RegistrationError, match="already been used"):
        await register_node(panel.url, token, config_file=tmp_path / "b.toml", data_dir=tmp_path)
    assert not (tmp_path / "b.toml").exists()


async def test_register_refuses_to_overwrite_a_registration_and_bad_inputs(
    panel: RunningPanel, tmp_path: Path
) -> None:
    existing = tmp_path / "daemon.toml"
    existing.write_text("node_id = 'kept'\n")
    token = await panel.token("careful")
    with pytest.raises(RegistrationError, match="--force"):
        await register_node(panel.url, token, config_file=existing, data_dir=tmp_path)
    assert existing.read_text() == "node_id = 'kept'\n"
    with pytest.raises(RegistrationError, match="http"):
        await register_node(
            "ftp://panel", token, config_file=tmp_path / "x.toml", data_dir=tmp_path
        )
    with pytest.raises(RegistrationError, match="not valid"):
        await register_node(
            panel.url, "strk_reg_forged", config_file=tmp_path / "y.toml", data_dir=tmp_path
        )
    with pytest.raises(RegistrationError, match="cannot reach"):
        await register_node(
            f"http://127.0.0.1:{free_port()}", token, config_file=tmp_path / "z.toml",
            data_dir=tmp_path,
        )  # fmt: skip


async def test_the_cli_registers_without_starting(panel: RunningPanel, tmp_path: Path) -> None:
    token = await panel.token("cli-node")
    config = tmp_path / "cli" / "daemon.toml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stellarstack", "daemon", "register",
        "--panel", panel.url, "--config", str(config), "--data-dir", str(tmp_path / "data"),
        "--hostname", "127.0.0.1", "--no-start",
        env={**os.environ, "STELLAR_REGISTRATION_TOKEN": token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, output.decode()
    node_id = tomllib.loads(config.read_text())["node_id"]
    assert f"registered node {node_id}" in output.decode()
    listed = await panel.admin.get(f"/api/v1/nodes/{node_id}")
    assert listed.json()["data"]["name"] == "cli-node"
