"""The event consumer: every node's event stream, read by the panel's consumer group.

One `StreamConsumer` per node stream, all in consumer group `panel` (`keys.EVENTS_GROUP`):
each event is applied by exactly one replica, acknowledged after its database transaction
commits, and taken over by another replica if this one dies holding it (after
`event_reclaim_after`). Node streams are discovered from the `nodes` table every
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

from stellarstack.broker import Broker, BrokerError, StreamConsumer, StreamMessage, parse_stream_id
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
    ) -> None:
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
        self._consumers: dict[uuid.UUID, tuple[StreamConsumer, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def node_ids(self) -> set[uuid.UUID]:
        """Nodes whose event stream this replica reads."""
        return set(self._consumers)

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
        for node_id in list(self._consumers):
            await self._drop(node_id)

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
        for node_id in current - self._consumers.keys():
            self._add(node_id)
        for node_id in self._consumers.keys() - current:
            await self._drop(node_id)

    def _add(self, node_id: uuid.UUID) -> None:
        async def handle(message: StreamMessage) -> None:
            await self.handle(node_id, message)

        consumer = StreamConsumer(
            self.broker,
            keys.node_events_stream(str(node_id)),
            keys.EVENTS_GROUP,
            self.consumer,
            handle,
            batch=50,
            block_ms=self.block_ms,
            min_idle_ms=int(self.reclaim_after * 1000),
        )
        task = asyncio.create_task(consumer.run(), name=f"panel:events:{node_id}")
        self._consumers[node_id] = (consumer, task)
        log.info("events.node_followed", node_id=str(node_id), consumer=self.consumer)

    async def _drop(self, node_id: uuid.UUID) -> None:
        consumer, task = self._consumers.pop(node_id)
        consumer.stop()
        await asyncio.gather(task, return_exceptions=True)

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
