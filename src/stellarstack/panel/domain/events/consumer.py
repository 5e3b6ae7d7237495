"""The event consumer: every node's event stream, read by the panel's consumer group.

A few `MultiStreamConsumer`s, each reading up to `streams_per_read` node streams with one
XREADGROUP (so 2,000 nodes cost four blocking connections, not 2,000), all in consumer group
`panel` (`keys.EVENTS_GROUP`): each event is applied by exactly one replica, acknowledged after
its database transaction commits, and taken over by another replica if this one dies holding
it (after `event_reclaim_after`). Node streams are discovered from the `nodes` table every
`node_discovery_period` (or at once after `refresh()`).

Malformed entries and events claiming another node are logged and acknowledged (dropped):
retrying them cannot help. A database error leaves the entry pending, so it is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from stellarstack.broker import (
    Broker,
    BrokerError,
    MultiStreamConsumer,
    StreamMessage,
    parse_stream_id,
)
from stellarstack.logs import get_logger
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.apply import apply_event
from stellarstack.panel.domain.events.fanout import publish_event, publish_node_status
from stellarstack.protocol import keys
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.events import Event

__all__ = ["EventIngest", "replica_name"]

log = get_logger(__name__)


def replica_name() -> str:
    """A consumer name unique to this panel process."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


def stream_time(entry_id: str) -> datetime:
    """When the broker appended an entry (its id's milliseconds; one clock for all nodes)."""
    ms, _ = parse_stream_id(entry_id)
    return datetime.fromtimestamp(ms / 1000, UTC)


class EventIngest:
    """Consume, apply and fan out the events of every node."""

    def __init__(
        self,
        database: Database,
        broker: Broker,
        *,
        consumer: str | None = None,
        reclaim_after: float = 30.0,
        discovery_period: float = 5.0,
        fresh_within: timedelta = timedelta(seconds=90),
        block_ms: int = 10_000,
        db_concurrency: int = 20,
        streams_per_read: int = 500,
    ) -> None:
        """Ingest every node's events as `consumer` (default: unique to this process)."""
        self.database = database
        self.broker = broker
        self.consumer = consumer or replica_name()
        self.reclaim_after = reclaim_after
        self.discovery_period = discovery_period
        self.fresh_within = fresh_within
        # Long blocking reads: an idle node then costs a read every few seconds, not every one
        # (a read returns as soon as an event arrives, so this adds no latency).
        self.block_ms = block_ms
        self.applied = 0
        # Many node streams, one connection pool: bound how many events hit the database at once.
        self._db_slots = asyncio.Semaphore(db_concurrency)
        self.streams_per_read = streams_per_read
        self._readers: list[tuple[MultiStreamConsumer, asyncio.Task[None]]] = []
        self._placement: dict[uuid.UUID, MultiStreamConsumer] = {}  # node -> its reader
        self._nodes_by_stream: dict[str, uuid.UUID] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def node_ids(self) -> set[uuid.UUID]:
        """Nodes whose event stream this replica reads."""
        return set(self._placement)

    def start(self) -> None:
        """Start discovering nodes and consuming their streams."""
        if self._task is None:
            self._task = asyncio.create_task(self._discover_forever(), name="panel:events")

    def refresh(self) -> None:
        """Look for new or deleted nodes now (after a registration or deletion)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop discovery and every consumer (entries in hand are finished first)."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for reader, _ in self._readers:
            reader.stop()
        await asyncio.gather(*(task for _, task in self._readers), return_exceptions=True)
        self._readers.clear()
        self._placement.clear()
        self._nodes_by_stream.clear()

    async def _discover_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await self.discover()
            except Exception:  # the database may be down; keep the consumers we have
                log.exception("events.discovery_failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.discovery_period):
                    stop = asyncio.ensure_future(self._stop.wait())
                    wake = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait({stop, wake}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stop.cancel()
                        wake.cancel()

    async def discover(self) -> None:
        """Start consumers for new nodes and stop those of deleted ones."""
        async with self.database.sessionmaker() as db:
            current = set((await db.scalars(sa.select(Node.id))).all())
        for node_id in current - self._placement.keys():
            self._add(node_id)
        for node_id in self._placement.keys() - current:
            await self._drop(node_id)

    def _add(self, node_id: uuid.UUID) -> None:
        stream = keys.node_events_stream(str(node_id))
        reader = self._reader_with_room()
        reader.add_stream(stream)
        self._placement[node_id] = reader
        self._nodes_by_stream[stream] = node_id
        log.info("events.node_followed", node_id=str(node_id), consumer=self.consumer)

    def _reader_with_room(self) -> MultiStreamConsumer:
        """The least loaded reader with room for one more stream (a new one if all are full)."""
        open_readers = [r for r, _ in self._readers if len(r.streams) < self.streams_per_read]
        if open_readers:
            return min(open_readers, key=lambda r: len(r.streams))
        reader = MultiStreamConsumer(
            self.broker,
            keys.EVENTS_GROUP,
            self.consumer,
            self._handle_entry,
            batch=50,
            block_ms=self.block_ms,
            min_idle_ms=int(self.reclaim_after * 1000),
        )
        name = f"panel:events:{len(self._readers)}"
        self._readers.append((reader, asyncio.create_task(reader.run(), name=name)))
        log.info("events.reader_started", readers=len(self._readers), consumer=self.consumer)
        return reader

    async def _drop(self, node_id: uuid.UUID) -> None:
        stream = keys.node_events_stream(str(node_id))
        self._placement.pop(node_id).remove_stream(stream)
        self._nodes_by_stream.pop(stream, None)
        log.info("events.node_unfollowed", node_id=str(node_id), consumer=self.consumer)

    async def _handle_entry(self, stream: str, message: StreamMessage) -> None:
        node_id = self._nodes_by_stream.get(stream)
        if node_id is not None:  # else the node was deleted meanwhile: leave the entry be
            await self.handle(node_id, message)

    async def handle(self, node_id: uuid.UUID, message: StreamMessage) -> None:
        """Apply one entry of node `node_id`'s stream, then fan it out."""
        try:
            event = Event.from_fields(message.fields)
        except MalformedMessageError as exc:
            log.warning("events.malformed", node_id=str(node_id), entry=message.id, error=str(exc))
            return
        if event.node_id != str(node_id):
            log.warning("events.foreign_node", node_id=str(node_id), claimed=event.node_id[:64])
            return
        try:
            async with self._db_slots, self.database.sessionmaker() as db:
                applied = await apply_event(
                    db,
                    node_id,
                    event,
                    seen_at=stream_time(message.id),
                    fresh_within=self.fresh_within,
                )
                await db.commit()
        except MalformedMessageError as exc:
            log.warning("events.malformed", node_id=str(node_id), entry=message.id, error=str(exc))
            return
        self.applied += 1
        if applied.node_status is not None:
            previous, status = applied.node_status
            await publish_node_status(
                self.broker, str(node_id), status, previous, "heartbeats resumed"
            )
        try:
            await publish_event(self.broker, event)
        except BrokerError as exc:  # pragma: no cover - publish_event already logs and eats
            log.warning("events.fanout_failed", error=str(exc))
