"""Server events applied to rows: status walk, crashes, installs, deployments, ordering,
node scoping, alerts and console audit — real `Event`s through `apply_event`, both engines."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from stellarstack.broker import MemoryBroker
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import (
    ActorType,
    AuditStatus,
    CommandStatus,
    DeploymentKind,
    DeploymentStatus,
)
from stellarstack.panel.db.enums import ServerStatus as Stored
from stellarstack.panel.db.models import AuditLog, Deployment, NodeCommand, Server
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.apply import apply_event
from stellarstack.panel.domain.events.consumer import EventIngest
from stellarstack.protocol import keys
from stellarstack.protocol.commands import CommandStatus as Outcome
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.events import (
    CommandResult,
    DeploymentProgress,
    Event,
    NodeAlert,
    ServerStatus,
    ServerStatusChange,
)
from tests.panel.admin.world import add_user
from tests.panel.db.factories import make_blueprint, make_node, make_server

T0 = 1_800_000_000.0  # the daemon's clock, in seconds


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    """One migrated database per module and engine; each test makes its own rows."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('events') / 'events.db'}"
    else:
        postgres = request.getfixturevalue("postgres_server")
        url = postgres.url(postgres.create_database())
    await migrate.upgrade(url)
    handle = Database(url)
    yield handle
    await handle.dispose()


@dataclass
class Rows:
    """Two nodes; a server (with an open deployment) on each; the owner."""

    node_a: uuid.UUID
    node_b: uuid.UUID
    server_a: uuid.UUID
    server_b: uuid.UUID
    deployment_a: uuid.UUID
    deployment_b: uuid.UUID
    owner_id: uuid.UUID


@pytest.fixture
async def rows(database: Database) -> Rows:
    """Fresh rows for one test, with an INSTALLING server on each node."""
    tag = uuid.uuid4().hex[:8]
    owner = await add_user(database, f"owner-{tag}@example.test")
    async with database.sessionmaker() as db:
        blueprint = make_blueprint(f"bp-{tag}")
        nodes = [make_node(f"a-{tag}"), make_node(f"b-{tag}")]
        nodes[1].api_token_hash = f"other-{tag}"
        servers, deployments = [], []
        for node in nodes:
            server = make_server(owner, node, blueprint, f"World {node.name}")
            server.status = Stored.INSTALLING
            servers.append(server)
            deployments.append(Deployment(server=server, kind=DeploymentKind.INSTALL))
        db.add_all([blueprint, *nodes, *servers, *deployments])
        await db.commit()
        return Rows(
            nodes[0].id,
            nodes[1].id,
            servers[0].id,
            servers[1].id,
            deployments[0].id,
            deployments[1].id,
            owner.id,
        )


async def apply(database: Database, node_id: uuid.UUID, event: Event) -> None:
    """Apply one event as the consumer does (its own transaction)."""
    async with database.sessionmaker() as db:
        await apply_event(
            db, node_id, event, seen_at=datetime.now(UTC), fresh_within=timedelta(seconds=90)
        )
        await db.commit()


def status(
    node_id: uuid.UUID, server_id: uuid.UUID, value: ServerStatus, at: float, **data: Any
) -> Event:
    """A `server.status` event the daemon sent at `at`."""
    change = ServerStatusChange(status=value, **data)
    return Event.create(change, node_id=str(node_id), server_id=str(server_id), at=at)


async def server(database: Database, server_id: uuid.UUID) -> Server:
    """A fresh copy of a server row."""
    async with database.sessionmaker() as db:
        row = await db.get(Server, server_id)
        assert row is not None
        return row


async def deployment(database: Database, deployment_id: uuid.UUID) -> Deployment:
    """A fresh copy of a deployment row."""
    async with database.sessionmaker() as db:
        row = await db.get(Deployment, deployment_id)
        assert row is not None
        return row


async def audit(database: Database, server_id: uuid.UUID) -> list[AuditLog]:
    """Audit entries about a server, oldest first."""
    async with database.sessionmaker() as db:
        found = await db.scalars(
            sa.select(AuditLog)
            .where(AuditLog.resource_id == str(server_id))
            .order_by(AuditLog.created_at, AuditLog.action)
        )
        return list(found)


async def test_a_server_walks_its_statuses_and_records_when_it_was_installed(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    walk = [
        (ServerStatus.STARTING, Stored.STARTING),
        (ServerStatus.RUNNING, Stored.RUNNING),
        (ServerStatus.STOPPING, Stored.STOPPING),
        (ServerStatus.STOPPED, Stored.OFFLINE),
    ]
    for step, (reported, stored) in enumerate(walk):
        await apply(database, a, status(a, srv, reported, T0 + step))
        assert (await server(database, srv)).status == stored
    row = await server(database, srv)
    assert row.installed_at == datetime.fromtimestamp(T0, UTC)  # the first start after install
    assert row.status_changed_at == datetime.fromtimestamp(T0 + 3, UTC)
    assert row.crash_count == 0


async def test_a_crash_records_the_daemons_count_and_time(database: Database, rows: Rows) -> None:
    a, srv = rows.node_a, rows.server_a
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0))
    await apply(
        database,
        a,
        status(a, srv, ServerStatus.CRASHED, T0 + 5, exit_code=137, oom_killed=True, crash_count=3),
    )
    row = await server(database, srv)
    assert row.status == Stored.CRASHED
    assert row.crash_count == 3
    assert row.last_crash_at == datetime.fromtimestamp(T0 + 5, UTC)
    # a daemon that does not count: the panel counts
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0 + 6))
    await apply(database, a, status(a, srv, ServerStatus.CRASHED, T0 + 7))
    assert (await server(database, srv)).crash_count == 4


async def test_a_failed_install_keeps_the_reason_and_fails_the_deployment(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    reason = "install script exited 2: <b>curl: (6) Could not resolve host</b>"
    await apply(database, a, status(a, srv, ServerStatus.INSTALL_FAILED, T0, reason=reason))
    row = await server(database, srv)
    assert row.status == Stored.INSTALL_FAILED
    assert row.install_error == reason  # verbatim: pages escape it
    assert row.installed_at is None
    failed = await deployment(database, rows.deployment_a)
    assert failed.status == DeploymentStatus.FAILED
    assert failed.error == reason
    assert failed.finished_at == datetime.fromtimestamp(T0, UTC)


async def test_deployment_progress_moves_a_deployment_to_its_end_and_no_further(
    database: Database, rows: Rows
) -> None:
    a = rows.node_a

    def progress(stage: str, fraction: float, message: str = "") -> Event:
        data = DeploymentProgress(
            deployment_id=str(rows.deployment_a), stage=stage, progress=fraction, message=message
        )
        return Event.create(data, node_id=str(a), server_id=str(rows.server_a))

    await apply(database, a, progress("pulling_image", 0.304))
    row = await deployment(database, rows.deployment_a)
    assert (row.status, row.step, row.progress) == (DeploymentStatus.RUNNING, "pulling_image", 30)
    started = row.started_at
    assert started is not None
    await apply(database, a, progress("installing", 0.5))
    row = await deployment(database, rows.deployment_a)
    assert (row.step, row.progress, row.started_at) == ("installing", 50, started)
    await apply(database, a, progress("done", 1.0))
    row = await deployment(database, rows.deployment_a)
    assert (row.status, row.progress) == (DeploymentStatus.SUCCEEDED, 100)
    assert row.finished_at is not None
    await apply(database, a, progress("installing", 0.6))  # late: a finished one stays
    assert (await deployment(database, rows.deployment_a)).status == DeploymentStatus.SUCCEEDED


async def test_a_failed_stage_fails_the_deployment_with_its_message(
    database: Database, rows: Rows
) -> None:
    a = rows.node_a
    for stage, fraction, message in [
        ("pulling_image", 0.2, ""),
        ("failed", 0.2, "image stellar/nope:1 not found"),
    ]:
        data = DeploymentProgress(
            deployment_id=str(rows.deployment_a), stage=stage, progress=fraction, message=message
        )
        await apply(database, a, Event.create(data, node_id=str(a)))
    row = await deployment(database, rows.deployment_a)
    assert row.status == DeploymentStatus.FAILED
    assert row.error == "image stellar/nope:1 not found"
    assert row.progress == 20


async def _install_command(
    database: Database, rows: Rows, kind: str = "server.create"
) -> uuid.UUID:
    async with database.sessionmaker() as db:
        command = NodeCommand(
            node_id=rows.node_a,
            server_id=rows.server_a,
            type=kind,
            payload={"serverId": str(rows.server_a), "deploymentId": str(rows.deployment_a)},
            status=CommandStatus.DELIVERED,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        db.add(command)
        await db.commit()
        return command.id


async def test_a_failed_create_command_fails_the_deployment_and_the_install(
    database: Database, rows: Rows
) -> None:
    command_id = await _install_command(database, rows)
    result = CommandResult(
        command_id=str(command_id),
        command_type="server.create",
        status=Outcome.FAILED,
        error="pull failed: manifest unknown",
    )
    await apply(database, rows.node_a, Event.create(result, node_id=str(rows.node_a)))
    row = await deployment(database, rows.deployment_a)
    assert (row.status, row.error) == (DeploymentStatus.FAILED, "pull failed: manifest unknown")
    srv = await server(database, rows.server_a)
    assert (srv.status, srv.install_error) == (
        Stored.INSTALL_FAILED,
        "pull failed: manifest unknown",
    )


async def test_a_completed_reinstall_command_succeeds_the_deployment(
    database: Database, rows: Rows
) -> None:
    command_id = await _install_command(database, rows, "server.reinstall")
    result = CommandResult(
        command_id=str(command_id), command_type="server.reinstall", status=Outcome.COMPLETED
    )
    await apply(database, rows.node_a, Event.create(result, node_id=str(rows.node_a)))
    row = await deployment(database, rows.deployment_a)
    assert (row.status, row.progress) == (DeploymentStatus.SUCCEEDED, 100)
    assert (await server(database, rows.server_a)).status == Stored.INSTALLING  # events say more


async def test_a_stale_status_never_overwrites_a_newer_one(database: Database, rows: Rows) -> None:
    a, srv = rows.node_a, rows.server_a
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0 + 10))
    await apply(database, a, status(a, srv, ServerStatus.STARTING, T0 + 9))
    await apply(database, a, status(a, srv, ServerStatus.CRASHED, T0 + 1, crash_count=9))
    row = await server(database, srv)
    assert (row.status, row.crash_count) == (Stored.RUNNING, 0)
    await apply(database, a, status(a, srv, ServerStatus.STOPPING, T0 + 10))  # same instant
    assert (await server(database, srv)).status == Stored.STOPPING


async def test_another_nodes_events_change_nothing_on_this_nodes_server(
    database: Database, rows: Rows
) -> None:
    b, srv = rows.node_b, rows.server_a  # node B speaks about node A's server
    await apply(database, b, status(b, srv, ServerStatus.CRASHED, T0, crash_count=5))
    await apply(database, b, status(b, srv, ServerStatus.INSTALL_FAILED, T0, reason="forged"))
    data = DeploymentProgress(deployment_id=str(rows.deployment_a), stage="failed", progress=0)
    await apply(database, b, Event.create(data, node_id=str(b)))
    alert = NodeAlert(severity="critical", message="forged alert")
    await apply(database, b, Event.create(alert, node_id=str(b), server_id=str(srv)))
    await apply(database, b, console_event(b, srv, "command_sent", rows.owner_id, command="op me"))
    command_id = await _install_command(database, rows)
    forged = CommandResult(
        command_id=str(command_id), command_type="server.create", status=Outcome.FAILED
    )
    await apply(database, b, Event.create(forged, node_id=str(b)))
    row = await server(database, srv)
    assert (row.status, row.crash_count, row.install_error) == (Stored.INSTALLING, 0, None)
    assert (await deployment(database, rows.deployment_a)).status == DeploymentStatus.PENDING
    assert await audit(database, srv) == []
    # node B's own server still takes node B's events
    await apply(database, b, status(b, rows.server_b, ServerStatus.RUNNING, T0))
    assert (await server(database, rows.server_b)).status == Stored.RUNNING


async def test_a_suspended_server_stays_suspended_and_a_reinstall_keeps_its_word(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    async with database.sessionmaker() as db:
        await db.execute(
            sa.update(Server).where(Server.id == srv).values(status=Stored.REINSTALLING)
        )
        await db.commit()
    await apply(database, a, status(a, srv, ServerStatus.INSTALLING, T0))
    assert (await server(database, srv)).status == Stored.REINSTALLING
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0 + 1))
    row = await server(database, srv)
    assert row.status == Stored.RUNNING
    assert row.installed_at == datetime.fromtimestamp(T0 + 1, UTC)
    async with database.sessionmaker() as db:
        await db.execute(sa.update(Server).where(Server.id == srv).values(status=Stored.SUSPENDED))
        await db.commit()
    await apply(database, a, status(a, srv, ServerStatus.STOPPED, T0 + 2))
    row = await server(database, srv)
    assert row.status == Stored.SUSPENDED
    assert row.status_changed_at == datetime.fromtimestamp(T0 + 2, UTC)


async def test_malformed_or_unknown_server_references_are_ignored(
    database: Database, rows: Rows
) -> None:
    a = rows.node_a
    for ref in ("not-a-uuid", str(uuid.uuid4()), "../../etc/passwd"):
        event = Event(
            type="server.status", node_id=str(a), server_id=ref, data={"status": "crashed"}
        )
        await apply(database, a, event)
    bad = Event(type="server.status", node_id=str(a), server_id=str(rows.server_a), data={})
    with pytest.raises(MalformedMessageError):
        await apply(database, a, bad)
    assert (await server(database, rows.server_a)).status == Stored.INSTALLING


async def test_a_server_alert_becomes_an_audit_entry_by_the_node(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    message = "crashed twice within 60 s; not restarting <script>alert(1)</script>"
    alert = NodeAlert(severity="warning", message=message)
    await apply(database, a, Event.create(alert, node_id=str(a), server_id=str(srv)))
    [entry] = await audit(database, srv)
    assert (entry.action, entry.resource, entry.status) == (
        "server.alert",
        "server",
        AuditStatus.FAILURE,
    )
    assert (entry.actor_type, entry.actor_id) == (ActorType.DAEMON, str(a))
    assert entry.details == {"severity": "warning", "message": message, "nodeId": str(a)}


def console_event(
    node_id: uuid.UUID, server_id: uuid.UUID, kind: str, user_id: uuid.UUID | str, **extra: Any
) -> Event:
    """A `console.<kind>` event as daemon/console_ws.py publishes it."""
    data = {
        "userId": str(user_id),
        "username": "owner",
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 <img src=x onerror=alert(1)>",
        "tokenId": "jti-1",
        **extra,
    }
    return Event(type=f"console.{kind}", node_id=str(node_id), server_id=str(server_id), data=data)


async def test_console_sessions_and_commands_reach_the_audit_log_as_the_user(
    database: Database, rows: Rows
) -> None:
    a, srv, user = rows.node_a, rows.server_a, rows.owner_id
    command = "say <b>hi</b> && rm -rf / ; {{7*7}}"
    for event in [
        console_event(a, srv, "session_start", user),
        console_event(a, srv, "command_sent", user, command=command),
        console_event(a, srv, "power", user, action="kill"),
        console_event(a, srv, "session_end", user, duration=12.5),
    ]:
        await apply(database, a, event)
    entries = {e.action: e for e in await audit(database, srv)}
    assert set(entries) == {
        "console.session_start",
        "console.command_sent",
        "console.power",
        "console.session_end",
    }
    sent = entries["console.command_sent"]
    assert (sent.user_id, sent.actor_type, sent.actor_ip) == (user, ActorType.USER, "203.0.113.7")
    assert sent.details is not None
    assert sent.details["command"] == command
    assert sent.details["userAgent"] == "Mozilla/5.0 <img src=x onerror=alert(1)>"
    assert sent.details["nodeId"] == str(a)
    assert entries["console.session_end"].details["duration"] == 12.5  # type: ignore[index]
    assert entries["console.power"].details["action"] == "kill"  # type: ignore[index]


async def test_console_audit_survives_unknown_users_bad_addresses_and_floods_of_text(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    ghost = uuid.uuid4()
    huge = "x" * 100_000
    await apply(
        database,
        a,
        console_event(a, srv, "command_sent", ghost, ip="not-an-ip", command=huge, userAgent=huge),
    )
    [entry] = await audit(database, srv)
    assert (entry.user_id, entry.actor_id, entry.actor_ip) == (None, str(ghost), None)
    assert entry.details is not None
    assert len(entry.details["command"]) == 4096
    assert len(entry.details["userAgent"]) == 256
    unknown = Event(type="console.rm_rf", node_id=str(a), server_id=str(srv), data={})
    await apply(database, a, unknown)
    with pytest.raises(MalformedMessageError):
        await apply(database, a, console_event(a, srv, "session_end", a, duration=-1))
    assert len(await audit(database, srv)) == 1


async def test_the_event_consumer_applies_a_daemons_stream_end_to_end(
    database: Database, rows: Rows
) -> None:
    broker = MemoryBroker()
    ingest = EventIngest(database, broker, block_ms=50, reclaim_after=0.2)
    ingest.start()
    try:
        await ingest.discover()
        a, srv = rows.node_a, rows.server_a
        stream = keys.node_events_stream(str(a))
        for event in [
            status(a, srv, ServerStatus.STARTING, T0),
            status(a, srv, ServerStatus.RUNNING, T0 + 1),
            console_event(a, srv, "command_sent", rows.owner_id, command="list"),
        ]:
            await broker.append(stream, event.to_fields())
        async with asyncio.timeout(10):
            while len(await audit(database, srv)) < 1 or (
                (await server(database, srv)).status != Stored.RUNNING
            ):
                await asyncio.sleep(0.02)
    finally:
        await ingest.stop()
        await broker.close()
    assert (await server(database, srv)).installed_at == datetime.fromtimestamp(T0, UTC)


async def test_events_applied_at_once_by_many_replicas_end_at_the_newest_status(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    cycle = [ServerStatus.STARTING, ServerStatus.RUNNING, ServerStatus.STOPPING]
    events = [status(a, srv, cycle[i % 3], T0 + i) for i in range(12)]
    newest = events[-1]
    shuffled = events[5:] + events[:5]  # the newest is not applied last
    await asyncio.gather(*(apply(database, a, event) for event in shuffled))
    row = await server(database, srv)
    assert row.status_changed_at == datetime.fromtimestamp(newest.timestamp, UTC)
    assert row.status == Stored.STOPPING  # cycle[11 % 3]
