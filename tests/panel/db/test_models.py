"""Models on both engines: values round-trip, constraints hold, deletes cascade as designed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from stellarstack.panel.db.enums import NodeStatus, Protocol, Role, ServerStatus
from stellarstack.panel.db.models import (
    Allocation,
    ApiKey,
    AuditLog,
    Backup,
    Blueprint,
    Deployment,
    Node,
    NodeCommand,
    Schedule,
    ScheduleTask,
    Server,
    ServerVariable,
    Session,
    Subuser,
    User,
)
from stellarstack.panel.db.session import Database
from tests.panel.db.factories import (
    NOW,
    digest,
    make_blueprint,
    make_node,
    make_server,
    make_user,
    seed_everything,
)


async def count(database: Database, model: type[object], *where: sa.ColumnElement[bool]) -> int:
    """Rows of a model's table, read in a fresh session."""
    async with database.sessionmaker() as session:
        statement = sa.select(sa.func.count()).select_from(model).where(*where)
        return int((await session.execute(statement)).scalar_one())


def test_ids_and_server_identifier_exist_before_the_first_flush() -> None:
    server = Server(name="x", memory_mb=1, disk_mb=1)
    assert server.id is not None
    assert server.identifier == server.id.hex[:12]
    assert User(email="a@b.c").id != User(email="a@b.c").id


async def test_enums_are_stored_as_their_values(database: Database) -> None:
    async with database.sessionmaker() as session:
        user = make_user(role=Role.SUPER_ADMIN)
        session.add(user)
        await session.commit()
        raw = await session.execute(sa.text("SELECT role FROM users"))
        assert raw.scalar_one() == "super_admin"
    async with database.sessionmaker() as session:
        loaded = await session.get_one(User, user.id)
        assert loaded.role is Role.SUPER_ADMIN


async def test_an_unknown_enum_value_is_refused(database: Database) -> None:
    async with database.sessionmaker() as session:
        session.add(User(email="x@example.com", role="emperor"))
        with pytest.raises(StatementError, match="emperor"):
            await session.flush()


async def test_json_columns_round_trip(database: Database) -> None:
    metrics = {"cpuUsage": 45.25, "disks": [{"mount": "/", "free": 10**12}], "name": "nœud 🚀"}
    async with database.sessionmaker() as session:
        owner, node = make_user(), make_node()
        node.last_metrics = metrics
        key = ApiKey(
            user=owner,
            name="<script>alert(1)</script>",
            prefix="strk_x",
            key_hash=digest("k"),
            permissions=["server.view", "server.console"],
        )
        session.add_all([owner, node, key])
        await session.commit()
    async with database.sessionmaker() as session:
        assert (await session.get_one(Node, node.id)).last_metrics == metrics
        loaded = await session.get_one(ApiKey, key.id)
        assert loaded.permissions == ["server.view", "server.console"]
        assert loaded.allowed_ips == []
        assert loaded.name == "<script>alert(1)</script>"


async def test_datetimes_come_back_timezone_aware_in_utc(database: Database) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    expires = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=india)
    async with database.sessionmaker() as session:
        user = make_user()
        session.add_all([user, Session(user=user, token_hash=digest("t"), expires_at=expires)])
        await session.commit()
    async with database.sessionmaker() as session:
        stored = (await session.execute(sa.select(Session))).scalar_one()
        assert stored.expires_at == expires
        assert stored.expires_at.tzinfo is UTC
        assert stored.expires_at.hour == 6 and stored.expires_at.minute == 30
        assert stored.created_at.tzinfo is UTC
        # Comparisons in SQL see the same instant.
        later = await session.execute(
            sa.select(sa.func.count()).where(Session.expires_at > expires - timedelta(seconds=1))
        )
        assert later.scalar_one() == 1


async def test_a_naive_datetime_is_refused(database: Database) -> None:
    async with database.sessionmaker() as session:
        user = make_user()
        session.add_all([user, Session(user=user, token_hash="x", expires_at=datetime(2030, 1, 1))])
        with pytest.raises(StatementError, match="naive datetime"):
            await session.flush()


async def test_updated_at_moves_on_update(database: Database) -> None:
    async with database.sessionmaker() as session:
        node = make_node()
        session.add(node)
        await session.commit()
        created, first = node.created_at, node.updated_at
        node.status = NodeStatus.DRAINING
        await session.commit()
        assert node.updated_at > first
        assert node.created_at == created


async def test_email_is_stored_lowercased_and_unique_in_any_case(database: Database) -> None:
    async with database.sessionmaker() as session:
        session.add(User(email="  Alice@Example.COM "))
        await session.commit()
        stored = (await session.execute(sa.select(User.email))).scalar_one()
        assert stored == "alice@example.com"
        session.add(User(email="ALICE@example.com"))
        with pytest.raises(IntegrityError):
            await session.commit()


async def test_the_same_port_cannot_be_allocated_twice(database: Database) -> None:
    async with database.sessionmaker() as session:
        node = make_node()
        session.add_all(
            [
                node,
                Allocation(node=node, ip="10.0.0.5", port=25565),
                # The same port over the other protocol is a different allocation.
                Allocation(node=node, ip="10.0.0.5", port=25565, protocol=Protocol.UDP),
            ]
        )
        await session.commit()
        session.add(Allocation(node=node, ip="10.0.0.5", port=25565, protocol=Protocol.TCP))
        with pytest.raises(IntegrityError):
            await session.commit()


@pytest.mark.parametrize(
    "duplicate",
    ["variable", "subuser", "task"],
)
async def test_per_server_uniqueness_is_enforced(database: Database, duplicate: str) -> None:
    async with database.sessionmaker() as session:
        seeded = await seed_everything(session)
        server = await session.get_one(Server, seeded.server_id)
        extra = {
            "variable": lambda: ServerVariable(server_id=server.id, key="PORT", value="1"),
            "subuser": lambda: Subuser(user_id=seeded.friend_id, server_id=server.id),
            "task": lambda: ScheduleTask(schedule_id=seeded.schedule_id, sequence=1, action="stop"),
        }[duplicate]()
        session.add(extra)
        with pytest.raises(IntegrityError):
            await session.commit()


@pytest.mark.parametrize("how", ["orm", "sql"])
async def test_deleting_a_server_removes_its_children_and_frees_its_ports(
    database: Database, how: str
) -> None:
    async with database.sessionmaker() as session:
        seeded = await seed_everything(session)
    async with database.sessionmaker() as session:
        if how == "orm":
            await session.delete(await session.get_one(Server, seeded.server_id))
        else:
            await session.execute(sa.delete(Server).where(Server.id == seeded.server_id))
        await session.commit()

    for model in (ServerVariable, Subuser, Backup, Schedule, ScheduleTask, Deployment):
        assert await count(database, model) == 0, model.__name__
    assert await count(database, Allocation) == 3
    assert await count(database, Allocation, Allocation.server_id.is_not(None)) == 0
    # The command history outlives the server.
    assert await count(database, NodeCommand, NodeCommand.server_id.is_(None)) == 1


async def test_a_user_who_owns_servers_cannot_be_deleted(database: Database) -> None:
    async with database.sessionmaker() as session:
        seeded = await seed_everything(session)
        with pytest.raises(IntegrityError):
            await session.execute(sa.delete(User).where(User.id == seeded.owner_id))


async def test_deleting_a_user_removes_their_access_but_keeps_the_audit_trail(
    database: Database,
) -> None:
    async with database.sessionmaker() as session:
        owner, node, blueprint = make_user(), make_node(), make_blueprint()
        server = make_server(owner, node, blueprint)
        friend = make_user("friend@example.com")
        session.add_all(
            [
                owner,
                node,
                blueprint,
                server,
                friend,
                Session(user=friend, token_hash=digest("s"), expires_at=NOW),
                ApiKey(user=friend, name="k", prefix="p", key_hash=digest("k")),
                Subuser(user=friend, server=server, permissions=["server.console"]),
                AuditLog(
                    user=friend,
                    actor_type="user",
                    actor_id=str(friend.id),
                    action="user.login",
                    resource="user",
                ),
            ]
        )
        await session.commit()
        await session.execute(sa.delete(User).where(User.id == friend.id))
        await session.commit()

    for model in (Session, ApiKey, Subuser):
        assert await count(database, model) == 0, model.__name__
    assert await count(database, AuditLog, AuditLog.user_id.is_(None)) == 1
    assert await count(database, Server) == 1


async def test_a_blueprint_in_use_cannot_be_deleted(database: Database) -> None:
    async with database.sessionmaker() as session:
        await seed_everything(session)
        with pytest.raises(IntegrityError):
            await session.execute(sa.delete(Blueprint))


async def test_server_defaults(database: Database) -> None:
    async with database.sessionmaker() as session:
        owner, node, blueprint = make_user(), make_node(), make_blueprint()
        session.add_all([owner, node, blueprint, make_server(owner, node, blueprint)])
        await session.commit()
    async with database.sessionmaker() as session:
        server = (await session.execute(sa.select(Server))).scalar_one()
        assert server.status is ServerStatus.OFFLINE
        assert (server.swap_mb, server.io_weight, server.crash_count) == (0, 500, 0)
        assert server.auto_start is True
        assert server.external_id is None
