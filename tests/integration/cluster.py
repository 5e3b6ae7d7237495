"""A real cluster on loopback: `stellarstack panel` and `stellarstack daemon` subprocesses.

The panel runs on PostgreSQL + Redis; each daemon has its own TOML config and data
directory and talks to the same Redis (as the default Redis user: per-node ACL users belong
to the registration work). Node rows are written straight into the database.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession

from stellarstack.panel.auth.sessions import hash_token
from stellarstack.panel.db.enums import CommandStatus, NodeStatus, Role
from stellarstack.panel.db.models import Node, NodeCommand, Session, User
from tests.support.services import free_port, stop_process, wait_for_port

__all__ = ["Cluster", "DaemonProcess", "PanelProcess", "eventually"]

HEARTBEAT = 1.0
"""Seconds between heartbeats in these tests (the panel expects the same)."""

_RAN = re.compile(r"daemon\.command_ran\s.*?\bid=([0-9a-f-]{36})")


def eventually(check: Callable[[], Any], seconds: float = 15.0, every: float = 0.05) -> Any:
    """Call `check` until it returns something truthy; fail after `seconds` with its last value."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not within {seconds}s; last value {last!r}")


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


@dataclass
class _Process:
    args: list[str]
    env: dict[str, str]
    output: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
        )
        threading.Thread(target=_pump, args=(self.proc.stdout, self.output), daemon=True).start()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)  # type: ignore[arg-type]

    def text(self) -> str:
        return "".join(self.output)


@dataclass
class DaemonProcess(_Process):
    """One node's daemon."""

    node_id: uuid.UUID = field(default_factory=uuid.uuid4)
    port: int = 0

    def ran(self) -> Counter[str]:
        """How many times this daemon (across restarts) ran each command id."""
        return Counter(_RAN.findall(self.text()))

    def wait_listening(self) -> None:
        assert self.proc is not None
        assert wait_for_port(self.port, 60, self.proc), self.text()[-3000:]  # type: ignore[arg-type]


@dataclass
class PanelProcess(_Process):
    """`stellarstack panel`."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, seconds: float = 90.0) -> None:
        assert self.proc is not None

        def answers() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, self.text()[-3000:]
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(answers, seconds, every=0.1)


class Cluster:
    """A panel, some daemons, and an admin's API client."""

    def __init__(self, workdir: Path, database_url: str, redis_url: str, nodes: int = 3) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.redis_url = redis_url
        self.engine = sa.create_engine(database_url)
        self.admin_token = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(16)
        panel_port = free_port()
        self.panel = PanelProcess(
            [sys.executable, "-m", "stellarstack", "panel", "--port", str(panel_port)],
            {
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "STELLAR_DATA_DIR": str(workdir / "panel"),
                "STELLAR_HEARTBEAT_INTERVAL": str(HEARTBEAT),
                "STELLAR_HEALTH_SWEEP_PERIOD": "0.1",
                "STELLAR_LEASE_TTL": "2",
                "STELLAR_EVENT_RECLAIM_AFTER": "1",
                "STELLAR_NODE_DISCOVERY_PERIOD": "0.5",
                "STELLAR_DAEMON_TIMEOUT": "1",
                "STELLAR_LOG_JSON": "true",
                "STELLAR_RATE_LIMIT_API_ADMIN": "100000/minute",
            },
            port=panel_port,
        )
        self.daemons = [self._daemon(i) for i in range(nodes)]
        self._seed()
        self.api = httpx.Client(
            base_url=self.panel.url,
            cookies={"stellar_session": self.admin_token, "stellar_csrf": self.csrf},
            headers={"x-csrf-token": self.csrf, "origin": self.panel.url},
            timeout=30,
        )

    def _daemon(self, index: int) -> DaemonProcess:
        node_id, port = uuid.uuid4(), free_port()
        data = self.workdir / f"node{index}"
        data.mkdir(parents=True)
        config = data / "daemon.toml"
        config.write_text(
            f'node_id = "{node_id}"\nredis_url = "{self.redis_url}"\ndata_dir = "{data}"\n'
            f'port = {port}\nheartbeat_interval = {HEARTBEAT}\nruntime = "process"\n'
        )
        args = [sys.executable, "-m", "stellarstack", "daemon", "--config", str(config)]
        return DaemonProcess(args, {}, node_id=node_id, port=port)

    def _seed(self) -> None:
        with OrmSession(self.engine) as db:
            admin = User(
                email="admin@cluster.test", name="Admin", password_hash="x", role=Role.ADMIN
            )
            db.add(admin)
            db.flush()
            db.add(
                Session(
                    user_id=admin.id,
                    token_hash=hash_token(self.admin_token),
                    expires_at=datetime.now(UTC) + timedelta(days=1),
                    last_seen_at=datetime.now(UTC),
                )
            )
            for i, daemon in enumerate(self.daemons):
                db.add(
                    Node(
                        id=daemon.node_id,
                        name=f"node-{i}",
                        fqdn="127.0.0.1",
                        scheme="http",
                        port=daemon.port,
                        region="loopback",
                        status=NodeStatus.STARTING,
                        api_token_hash=secrets.token_hex(32),
                    )
                )
            db.commit()

    def start(self) -> None:
        """Start the panel and every daemon; wait until all answer."""
        self.panel.start()
        for daemon in self.daemons:
            daemon.start()
        self.panel.wait_healthy()
        for daemon in self.daemons:
            daemon.wait_listening()

    def stop(self) -> None:
        """Stop everything; their output stays in the work directory for a post-mortem."""
        for daemon in self.daemons:
            daemon.stop()
        self.panel.stop()
        (self.workdir / "panel.log").write_text(self.panel.text())
        for i, daemon in enumerate(self.daemons):
            (self.workdir / f"node{i}.log").write_text(daemon.text())
        self.api.close()
        self.engine.dispose()

    # ------------------------------------------------------------------ reading state

    def node_status(self, node_id: uuid.UUID) -> NodeStatus:
        with OrmSession(self.engine) as db:
            status = db.scalar(sa.select(Node.status).where(Node.id == node_id))
            assert status is not None
            return status

    def statuses(self, ids: list[str]) -> dict[str, CommandStatus]:
        with OrmSession(self.engine) as db:
            rows = db.execute(
                sa.select(NodeCommand.id, NodeCommand.status).where(
                    NodeCommand.id.in_([uuid.UUID(i) for i in ids])
                )
            ).all()
        return {str(i): s for i, s in rows}

    def all_finished(self, ids: list[str], status: CommandStatus) -> bool:
        found = self.statuses(ids)
        return len(found) == len(ids) and all(s == status for s in found.values())

    # ------------------------------------------------------------------ acting

    def send(self, daemon: DaemonProcess, type_: str = "node.ping", **body: Any) -> httpx.Response:
        return self.api.post(
            f"/api/v1/nodes/{daemon.node_id}/commands", json={"type": type_, **body}
        )

    def ping(self, daemon: DaemonProcess, count: int = 1) -> list[str]:
        ids = []
        for _ in range(count):
            response = self.send(daemon)
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["id"])
        return ids
