"""Statuses the panel owns survive the daemon's stop events: SUSPENDED until lifted, and
REINSTALLING through the stop that opens a reinstall — real events through `apply_event`,
on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from stellarstack.panel.db.enums import DeploymentKind, DeploymentStatus
from stellarstack.panel.db.enums import ServerStatus as Stored
from stellarstack.panel.db.models import Deployment, Server
from stellarstack.panel.db.session import Database
from stellarstack.protocol.events import DeploymentProgress, Event, ServerStatus
from tests.panel.events import test_server_events as events
from tests.panel.events.test_server_events import T0, Rows, apply, deployment, server, status

database = events.database  # the module's migrated database, per engine
rows = events.rows


async def start_reinstall(database: Database, rows: Rows, *, was: Stored) -> uuid.UUID:
    """The panel's side of a reinstall: server REINSTALLING, a pending REINSTALL deployment."""
    async with database.sessionmaker() as db:
        await db.execute(
            sa.update(Deployment)
            .where(Deployment.server_id == rows.server_a)
            .values(status=DeploymentStatus.SUCCEEDED)
        )
        await db.execute(sa.update(Server).where(Server.id == rows.server_a).values(status=was))
        await db.commit()
    await apply(database, rows.node_a, status(rows.node_a, rows.server_a, _REPORTED[was], T0))
    async with database.sessionmaker() as db:
        reinstall = Deployment(server_id=rows.server_a, kind=DeploymentKind.REINSTALL)
        db.add(reinstall)
        await db.execute(
            sa.update(Server).where(Server.id == rows.server_a).values(status=Stored.REINSTALLING)
        )
        await db.commit()
        return reinstall.id


_REPORTED = {Stored.RUNNING: ServerStatus.RUNNING, Stored.OFFLINE: ServerStatus.STOPPED}


def progress(rows: Rows, deployment_id: uuid.UUID, stage: str, fraction: float) -> Event:
    """A `deployment.progress` event of node A."""
    data = DeploymentProgress(deployment_id=str(deployment_id), stage=stage, progress=fraction)
    return Event.create(data, node_id=str(rows.node_a), server_id=str(rows.server_a))


async def test_a_running_server_being_reinstalled_stays_reinstalling_through_its_stop(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    reinstall = await start_reinstall(database, rows, was=Stored.RUNNING)
    await apply(database, a, status(a, srv, ServerStatus.STOPPING, T0 + 1))
    assert (await server(database, srv)).status == Stored.REINSTALLING
    await apply(database, a, status(a, srv, ServerStatus.STOPPED, T0 + 2, exit_code=0))
    row = await server(database, srv)
    assert row.status == Stored.REINSTALLING
    assert row.installed_at is not None  # the stop is not taken for a finished install
    await apply(database, a, progress(rows, reinstall, "pulling_image", 0.0))
    await apply(database, a, status(a, srv, ServerStatus.INSTALLING, T0 + 3))
    assert (await server(database, srv)).status == Stored.REINSTALLING
    await apply(database, a, status(a, srv, ServerStatus.STARTING, T0 + 4))
    assert (await server(database, srv)).status == Stored.STARTING
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0 + 5))
    await apply(database, a, progress(rows, reinstall, "done", 1.0))
    assert (await server(database, srv)).status == Stored.RUNNING
    assert (await deployment(database, reinstall)).status == DeploymentStatus.SUCCEEDED


async def test_a_reinstall_that_does_not_start_the_server_ends_offline(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    reinstall = await start_reinstall(database, rows, was=Stored.OFFLINE)
    await apply(database, a, status(a, srv, ServerStatus.INSTALLING, T0 + 1))
    await apply(database, a, progress(rows, reinstall, "pulling_image", 0.0))
    assert (await server(database, srv)).status == Stored.REINSTALLING
    await apply(database, a, status(a, srv, ServerStatus.STOPPED, T0 + 2))
    row = await server(database, srv)
    assert row.status == Stored.OFFLINE
    assert row.status_changed_at is not None


async def test_a_crash_while_reinstalling_pending_is_still_recorded(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    await start_reinstall(database, rows, was=Stored.RUNNING)
    await apply(database, a, status(a, srv, ServerStatus.CRASHED, T0 + 1, exit_code=1))
    row = await server(database, srv)
    assert row.status == Stored.CRASHED  # only a stop is the reinstall's own
    assert row.crash_count == 1


async def test_a_suspended_server_stays_suspended_through_stop_crash_and_restart_events(
    database: Database, rows: Rows
) -> None:
    a, srv = rows.node_a, rows.server_a
    await apply(database, a, status(a, srv, ServerStatus.RUNNING, T0))
    async with database.sessionmaker() as db:
        await db.execute(
            sa.update(Server)
            .where(Server.id == srv)
            .values(status=Stored.SUSPENDED, suspend_reason="unpaid")
        )
        await db.commit()
    walk = [ServerStatus.STOPPING, ServerStatus.STOPPED, ServerStatus.CRASHED, ServerStatus.RUNNING]
    for step, value in enumerate(walk, start=1):
        await apply(database, a, status(a, srv, value, T0 + step))
        assert (await server(database, srv)).status == Stored.SUSPENDED, value
    async with database.sessionmaker() as db:  # what unsuspend_server writes
        await db.execute(
            sa.update(Server)
            .where(Server.id == srv)
            .values(status=Stored.OFFLINE, suspend_reason=None)
        )
        await db.commit()
    await apply(database, a, status(a, srv, ServerStatus.STARTING, T0 + 10))
    assert (await server(database, srv)).status == Stored.STARTING
