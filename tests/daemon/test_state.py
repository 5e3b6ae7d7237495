"""The daemon's SQLite state: each command id is begun once; records outlive restarts."""

from __future__ import annotations

from pathlib import Path

from stellarstack.daemon.state import DaemonState
from stellarstack.protocol import Command, CommandStatus


async def test_a_command_id_is_begun_once_and_then_returns_its_record(tmp_path: Path) -> None:
    state = await DaemonState.open(tmp_path / "state.db")
    command = Command.create("node.ping", ttl=60, at=1000)
    try:
        assert await state.begin_command(command, at=1001) is None
        running = await state.begin_command(command, at=1002)
        assert running is not None and not running.finished and running.received_at == 1001
        done = await state.finish_command(
            command.id, CommandStatus.COMPLETED, at=1003, result={"pong": True}
        )
        assert done.finished and done.result == {"pong": True} and done.finished_at == 1003
        again = await state.begin_command(command, at=1004)
        assert again == done
    finally:
        await state.close()


async def test_records_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    command = Command.create("server.start", {"serverId": "s1"}, ttl=60, at=1000)
    state = await DaemonState.open(path)
    await state.begin_command(command, at=1000)
    await state.finish_command(command.id, CommandStatus.FAILED, at=1001, error="no such server")
    await state.close()
    reopened = await DaemonState.open(path)
    try:
        record = await reopened.begin_command(command, at=2000)
        assert record is not None
        assert (record.outcome, record.error) == (CommandStatus.FAILED, "no such server")
    finally:
        await reopened.close()


async def test_only_finished_and_expired_records_are_pruned(tmp_path: Path) -> None:
    state = await DaemonState.open(tmp_path / "state.db")
    expired_done = Command.create("node.ping", ttl=10, at=1000)
    expired_running = Command.create("node.ping", ttl=10, at=1000)
    live_done = Command.create("node.ping", ttl=10_000, at=1000)
    try:
        for command in (expired_done, expired_running, live_done):
            await state.begin_command(command, at=1000)
        for command in (expired_done, live_done):
            await state.finish_command(command.id, CommandStatus.COMPLETED, at=1001)
        assert await state.prune_commands(now=5000) == 1
        assert await state.get_command(expired_done.id) is None
        assert await state.get_command(expired_running.id) is not None
        assert await state.get_command(live_done.id) is not None
    finally:
        await state.close()
