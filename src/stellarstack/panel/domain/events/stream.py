"""The SSE event stream: one tail of the replay log per replica, filtered per client, resumable.

Every fanned-out event is an entry of the replay log `stellar:events:log` (see `fanout.py`).
Each panel process runs one `EventHub` per broker: a single blocking read of the log that hands
each entry to the clients allowed to see it (indexed by server, so an event costs only its
watchers). An SSE frame is built once per entry and shared by every client::

    id: 1700000000000-0
    event: server.status
    data: {"id":"…","type":"server.status","nodeId":"…","serverId":"…","timestamp":…,"data":{…}}

Resume without gap or duplicate: a client attaches at the hub's position P (everything after
P reaches it live), then reads the log from its `Last-Event-ID` up to P; live entries not after
the resume point are dropped. Ids are the log's, so any replica resumes what another sent.

Control events the stream itself sends: `stellar.resync` (events may have been missed, e.g. the
resume point was trimmed from the log or Redis was down: reload state), `stellar.degraded`
(Redis stopped answering; events pause), `stellar.closed` (the credential stopped working).
A client too slow to keep up (its queue of `queue_size` entries full) is disconnected; it
resumes from the log where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from stellarstack.broker import (
    Broker,
    BrokerError,
    InvalidStreamId,
    StreamMessage,
    format_stream_id,
    parse_stream_id,
)
from stellarstack.logs import get_logger
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.fanout import EVENTS_LOG
from stellarstack.panel.domain.events.visibility import (
    ACCESS_CHANGED_CHANNEL,
    Credential,
    Visibility,
    resolve_visibility,
)
from stellarstack.panel.errors import BadRequest

__all__ = [
    "EventHub",
    "LogEntry",
    "StreamOptions",
    "Subscriber",
    "event_stream",
    "hub_for",
    "parse_last_event_id",
]

log = get_logger(__name__)

StreamKey = tuple[int, int]
READ_BATCH = 500
MAX_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One replay-log entry, ready to send: its key, its server (None: node-wide), its frame."""

    key: StreamKey
    server: str | None
    frame: bytes


def _control(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def entry_of(message: StreamMessage) -> LogEntry | None:
    """The sendable form of a log entry; None for a malformed one (never sent)."""
    kind, text = message.fields.get("type", ""), message.fields.get("message", "")
    if not kind or not text or any(c in kind + text for c in "\r\n"):
        return None
    frame = f"id: {message.id}\nevent: {kind}\ndata: {text}\n\n".encode()
    return LogEntry(parse_stream_id(message.id), message.fields.get("server") or None, frame)


def parse_last_event_id(value: str | None) -> StreamKey | None:
    """A client's `Last-Event-ID`; None when absent; 400 when it is not an event id."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        if len(value) > MAX_ID_LENGTH:
            raise InvalidStreamId("too long")
        return parse_stream_id(value)
    except InvalidStreamId:
        raise BadRequest(
            "Last-Event-ID is not an event id: send back the `id:` of the last event received "
            "(such as 1700000000000-0), or nothing to start from now."
        ) from None


RECHECK = "recheck"
DEGRADED = "degraded"
RECOVERED = "recovered"
CLOSED = "closed"
Signal = str


@dataclass(eq=False)
class Subscriber:
    """One SSE client: what it may see, and its queue of entries and signals."""

    credential: Credential
    visibility: Visibility
    start: StreamKey
    queue: asyncio.Queue[LogEntry | Signal]
    overflowed: bool = False
    indexed: set[str] = field(default_factory=set)

    def offer(self, item: LogEntry | Signal) -> bool:
        """Queue an entry or signal; False (and marked too slow) when the queue is full."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True


class EventHub:
    """One tail of the replay log per process, dispatching entries to subscribers."""

    def __init__(self, broker: Broker, *, block_ms: int = 1000) -> None:
        """Tail `broker`'s replay log while anyone listens."""
        self.broker = broker
        self.block_ms = block_ms
        self.position: StreamKey = (0, 0)
        self.subscribers: set[Subscriber] = set()
        self._by_server: dict[str, set[Subscriber]] = {}
        self._all_servers: set[Subscriber] = set()
        self._node_watchers: set[Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.failing = False
        """Whether the log cannot be read right now (Redis down)."""

    @property
    def running(self) -> bool:
        """Whether the tail is running."""
        return any(not task.done() for task in self._tasks)

    async def attach(
        self, credential: Credential, visibility: Visibility, *, queue_size: int
    ) -> Subscriber:
        """A new subscriber receiving every entry after the hub's current position."""
        if not self.running:
            last = parse_stream_id(await self.broker.last_id(EVENTS_LOG))
            if not self.running:  # nobody started it meanwhile
                self.position = last
                self._tasks = [
                    asyncio.create_task(self._tail(), name="panel:sse-tail"),
                    asyncio.create_task(self._watch_access(), name="panel:sse-access"),
                ]
        sub = Subscriber(credential, visibility, self.position, asyncio.Queue(queue_size))
        self.subscribers.add(sub)
        self._index(sub)
        if self.failing:
            sub.offer(DEGRADED)
        return sub

    def streams_of(self, user_id: uuid.UUID) -> int:
        """How many streams of this user this process serves."""
        return sum(1 for sub in self.subscribers if sub.credential.user_id == user_id)

    def detach(self, sub: Subscriber) -> None:
        """Stop delivering to a subscriber."""
        self.subscribers.discard(sub)
        self._unindex(sub)

    def update(self, sub: Subscriber, visibility: Visibility) -> None:
        """Apply re-evaluated access to a subscriber."""
        if visibility != sub.visibility:
            self._unindex(sub)
            sub.visibility = visibility
            self._index(sub)

    def _index(self, sub: Subscriber) -> None:
        vis = sub.visibility
        if vis.all_servers and vis.only is None:
            self._all_servers.add(sub)
        else:
            watched = vis.servers if vis.only is None else vis.only
            sub.indexed = {s for s in watched if vis.sees_server(s)}
            for server in sub.indexed:
                self._by_server.setdefault(server, set()).add(sub)
        if vis.sees_node():
            self._node_watchers.add(sub)

    def _unindex(self, sub: Subscriber) -> None:
        self._all_servers.discard(sub)
        self._node_watchers.discard(sub)
        for server in sub.indexed:
            watchers = self._by_server.get(server)
            if watchers is not None:
                watchers.discard(sub)
                if not watchers:
                    del self._by_server[server]
        sub.indexed = set()

    def dispatch(self, entry: LogEntry) -> None:
        """Hand an entry to every subscriber allowed to see it."""
        self.position = entry.key
        slow: list[Subscriber] = []
        if entry.server is None:
            targets: set[Subscriber] | frozenset[Subscriber] = self._node_watchers
        else:
            targets = self._by_server.get(entry.server, frozenset())
            slow += [sub for sub in self._all_servers if not sub.offer(entry)]
        slow += [sub for sub in targets if not sub.offer(entry)]
        for sub in slow:  # it reconnects and resumes from the log
            self.detach(sub)

    def broadcast(self, signal: Signal, match: Callable[[Subscriber], bool] = bool) -> None:
        """Send a signal to every subscriber (or those `match` selects)."""
        for sub in list(self.subscribers):
            if match(sub):
                sub.offer(signal)

    async def _tail(self) -> None:
        backoff = 0.5
        while self.subscribers:
            try:
                found = await self.broker.read(
                    {EVENTS_LOG: format_stream_id(self.position)},
                    count=READ_BATCH,
                    block_ms=self.block_ms,
                )
            except BrokerError as exc:
                if not self.failing:
                    log.warning("events.stream_tail_failed", error=str(exc)[:200])
                    self.broadcast(DEGRADED)
                self.failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self.failing:
                log.info("events.stream_tail_recovered")
                self.broadcast(RECOVERED)
                self.failing, backoff = False, 0.5
            for _, message in found:
                entry = entry_of(message)
                if entry is None:
                    self.position = parse_stream_id(message.id)
                    log.warning("events.stream_malformed_entry", entry=message.id)
                else:
                    self.dispatch(entry)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _watch_access(self) -> None:
        while True:
            try:
                async with self.broker.subscribe(ACCESS_CHANGED_CHANNEL) as changes:
                    async for message in changes:
                        self._access_changed(message.data)
            except BrokerError as exc:
                log.warning("events.access_watch_failed", error=str(exc)[:200])
            await asyncio.sleep(1.0)

    def _access_changed(self, data: str) -> None:
        try:
            target = json.loads(data)
            user = None if target == "*" else uuid.UUID(str(target))
        except ValueError:
            return
        self.broadcast(RECHECK, lambda s: user is None or s.credential.user_id == user)


_HUBS: weakref.WeakKeyDictionary[Broker, EventHub] = weakref.WeakKeyDictionary()


def hub_for(broker: Broker) -> EventHub:
    """This process's hub for a broker."""
    hub = _HUBS.get(broker)
    if hub is None:
        hub = _HUBS[broker] = EventHub(broker)
    return hub


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Timings of one stream (from the panel settings)."""

    heartbeat: float = 15.0
    recheck: float = 5.0
    retry_ms: int = 3000


async def _replay(
    broker: Broker, sub: Subscriber, after: StreamKey
) -> AsyncIterator[list[LogEntry]]:
    """Entries after `after` up to the subscriber's start that it may see, in batches."""
    cursor = after
    while cursor < sub.start:
        found = await broker.read({EVENTS_LOG: format_stream_id(cursor)}, count=READ_BATCH)
        if not found:
            return
        batch: list[LogEntry] = []
        for _, message in found:
            key = parse_stream_id(message.id)
            if key > sub.start:
                yield batch
                return
            cursor = key
            entry = entry_of(message)
            if entry is not None and sub.visibility.sees(entry.server):
                batch.append(entry)
        yield batch


async def _resume_floor(broker: Broker, sub: Subscriber, after: StreamKey) -> StreamKey:
    """Live entries up to this key were already sent (or replayed); a forged future id is
    treated as "from now"."""
    if after <= sub.start:
        return sub.start
    newest = parse_stream_id(await broker.last_id(EVENTS_LOG))
    return after if after <= newest else sub.start


async def _trimmed_past(broker: Broker, after: StreamKey) -> bool:
    """Whether entries after `after` may have been trimmed from the log already."""
    oldest = await broker.read({EVENTS_LOG: "0"}, count=1)
    return bool(oldest) and after < parse_stream_id(oldest[0][1].id)


async def event_stream(
    hub: EventHub,
    sub: Subscriber,
    database: Database,
    *,
    last_event_id: StreamKey | None,
    options: StreamOptions,
) -> AsyncIterator[bytes]:
    """The bytes of one SSE response: replay, then live events, heartbeats and re-checks."""
    try:
        yield f"retry: {options.retry_ms}\n: connected\n\n".encode()
        floor = sub.start
        if last_event_id is not None:
            try:
                if await _trimmed_past(hub.broker, last_event_id):
                    yield _control("stellar.resync", {"reason": "events were missed; reload"})
                async for batch in _replay(hub.broker, sub, last_event_id):
                    if batch:
                        yield b"".join(entry.frame for entry in batch)
                floor = await _resume_floor(hub.broker, sub, last_event_id)
            except BrokerError as exc:  # the log is unreachable: say so, go on live
                log.warning("events.replay_failed", error=str(exc)[:200])
                yield _control("stellar.resync", {"reason": "events could not be replayed"})
        async for chunk in _live(hub, sub, database, floor, options):
            yield chunk
    finally:
        hub.detach(sub)


async def _live(
    hub: EventHub, sub: Subscriber, database: Database, floor: StreamKey, options: StreamOptions
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    next_check = loop.time() + options.recheck
    last_write = loop.time()
    checking: asyncio.Future[None] = loop.create_future()
    checking.set_result(None)
    try:
        while True:
            items: list[LogEntry | Signal] = []
            if sub.queue.empty():  # wait for the next entry, a heartbeat or a re-check
                wait = max(0.0, min(last_write + options.heartbeat, next_check) - loop.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        items.append(await sub.queue.get())
            while not sub.queue.empty():
                items.append(sub.queue.get_nowait())
            if sub.overflowed:
                log.info("events.stream_overflow", user_id=str(sub.credential.user_id))
                return
            frames = [i.frame for i in items if isinstance(i, LogEntry) and i.key > floor]
            signals = {i for i in items if isinstance(i, str)}
            if DEGRADED in signals:
                frames.append(_control("stellar.degraded", {"reason": "the event broker is down"}))
            if RECOVERED in signals:
                frames.append(_control("stellar.resync", {"reason": "the event broker is back"}))
            if CLOSED in signals:
                yield b"".join(frames) + _control("stellar.closed", {"reason": "access ended"})
                return
            if RECHECK in signals or loop.time() >= next_check:
                if checking.done():  # off the delivery path: events flow while the DB answers
                    next_check = loop.time() + options.recheck
                    checking = asyncio.create_task(_recheck(hub, sub, database))
                else:  # one is running (maybe from before the change): another right after
                    next_check = loop.time() + 0.05
            if frames:
                yield b"".join(frames)
            elif loop.time() - last_write >= options.heartbeat:
                yield b": keep-alive\n\n"
            else:
                continue
            last_write = loop.time()
    finally:
        checking.cancel()


async def _recheck(hub: EventHub, sub: Subscriber, database: Database) -> None:
    """Re-evaluate the subscriber's access; signal CLOSED when its credential stopped working."""
    started = time.perf_counter()
    try:
        async with database.sessionmaker() as db:
            visibility = await resolve_visibility(db, sub.credential, only=sub.visibility.only)
    except Exception as exc:  # the database is down: keep what was decided, try again later
        log.warning("events.recheck_failed", error=str(exc)[:200])
        return
    if visibility is None:
        log.info("events.stream_access_ended", user_id=str(sub.credential.user_id))
        hub.detach(sub)  # nothing more for it, even before the stream notices
        sub.offer(CLOSED)
        return
    hub.update(sub, visibility)
    log.debug("events.recheck", ms=round((time.perf_counter() - started) * 1000, 2))
