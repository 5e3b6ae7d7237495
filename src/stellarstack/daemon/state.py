"""The daemon's local state (SQLite): the command record that makes each id run at most once.

A command id is recorded *before* its handler runs. A redelivered id is never run again: the
recorded outcome is reported instead, and an id found still `running` (the daemon stopped
in the middle) is closed as failed. A record is kept until its command has expired, after
which a redelivery would be refused as expired anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiosqlite

from stellarstack.protocol.commands import Command, CommandStatus

__all__ = ["CommandRecord", "DaemonState"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    outcome     TEXT,             -- NULL while running, then a CommandStatus value
    result      TEXT NOT NULL DEFAULT '{}',
    error       TEXT,
    received_at REAL NOT NULL,
    expires_at  REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS commands_expires_at ON commands (expires_at);
"""


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What the daemon remembers about one command id."""

    id: str
    type: str
    outcome: CommandStatus | None
    result: dict[str, Any]
    error: str | None
    received_at: float
    finished_at: float | None

    @property
    def finished(self) -> bool:
        """False while the command is (or was, before a crash) still running."""
        return self.outcome is not None


class DaemonState:
    """One SQLite file in the daemon's data directory; open with `await DaemonState.open()`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) the state database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
            await db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            await db.commit()
        except BaseException:
            await db.close()
            raise
        return cls(db, path)

    async def close(self) -> None:
        """Close the database."""
        await self._db.close()

    async def begin_command(self, command: Command, *, at: float) -> CommandRecord | None:
        """Record the id as running and return None; if it was seen before, return its record."""
        cursor = await self._db.execute(
            "INSERT INTO commands (id, type, received_at, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (command.id, command.type, at, command.expires_at),
        )
        await self._db.commit()
        if cursor.rowcount == 1:
            return None
        record = await self.get_command(command.id)
        assert record is not None
        return record

    async def finish_command(
        self,
        command_id: str,
        outcome: CommandStatus,
        *,
        at: float,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> CommandRecord:
        """Record how a command ended and return the record."""
        await self._db.execute(
            "UPDATE commands SET outcome = ?, result = ?, error = ?, finished_at = ? WHERE id = ?",
            (outcome.value, json.dumps(result or {}), error, at, command_id),
        )
        await self._db.commit()
        record = await self.get_command(command_id)
        if record is None:
            raise KeyError(f"command {command_id!r} was never begun")
        return record

    async def get_command(self, command_id: str) -> CommandRecord | None:
        """The record of a command id, if any."""
        cursor = await self._db.execute(
            "SELECT id, type, outcome, result, error, received_at, finished_at "
            "FROM commands WHERE id = ?",
            (command_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        return CommandRecord(
            id=row[0],
            type=row[1],
            outcome=CommandStatus(row[2]) if row[2] is not None else None,
            result=json.loads(row[3]),
            error=row[4],
            received_at=row[5],
            finished_at=row[6],
        )

    async def prune_commands(self, now: float) -> int:
        """Forget finished commands that expired before `now`; return how many."""
        cursor = await self._db.execute(
            "DELETE FROM commands WHERE expires_at < ? AND outcome IS NOT NULL", (now,)
        )
        await self._db.commit()
        return cursor.rowcount
