"""Short-lived caches of live state (spec §3.1.4): server status and metrics, node status.

Written when an event is fanned out (`record_event`, `record_node_status`), read by pages and
the API (`cached_server_status`, `cached_server_metrics`, `cached_node_status`). The database
stays the source of truth: a miss, an expired entry or an unreachable Redis falls back to it
(spec §15.3), so Redis going down makes pages a little staler, never broken.

| key | TTL |
|---|---|
| `cache:server:{id}:status` | 30 s (`keys.SERVER_STATUS_CACHE_TTL`) |
| `cache:server:{id}:metrics` | 10 s |
| `cache:node:{id}:status` | 30 s |
| `cache:node:{id}:metrics` | 10 s (`keys.NODE_METRICS_CACHE_TTL`) |

On Redis the entries live in Redis (shared by replicas); on the embedded default in process.
After a failed Redis call the cache is skipped for `BACKOFF_SECONDS`, so a dead Redis costs
one short timeout every few seconds, not one per request.
"""

from __future__ import annotations

import abc
import asyncio
import json
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.broker import Broker, RedisBroker
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node, Server
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, EventType

__all__ = [
    "BACKOFF_SECONDS",
    "METRICS_TTL",
    "CachedValue",
    "StatusCache",
    "cached_node_status",
    "cached_server_metrics",
    "cached_server_status",
    "record_event",
    "record_node_status",
    "status_cache",
]

log = get_logger(__name__)

METRICS_TTL = 10
"""Seconds cached server metrics stay valid."""
BACKOFF_SECONDS = 5.0
"""How long the cache is skipped after Redis failed to answer."""
CALL_TIMEOUT = 0.25
"""A cache call slower than this counts as a failure (the database answers instead)."""


def server_metrics_cache_key(server_id: str) -> str:
    """Cache key of a server's latest metrics."""
    return f"cache:server:{keys.check_identifier(server_id, kind='server id')}:metrics"


def node_status_cache_key(node_id: str) -> str:
    """Cache key of a node's status."""
    return f"cache:node:{keys.check_identifier(node_id, kind='node id')}:status"


@dataclass(frozen=True, slots=True)
class CachedValue:
    """A value and where it came from (`cache` or `database`)."""

    value: dict[str, Any]
    source: str


class StatusCache(abc.ABC):
    """JSON values with a TTL; failures are swallowed (the caller falls back)."""

    def __init__(self) -> None:
        self._skip_until = 0.0

    @property
    def available(self) -> bool:
        """False while backing off after a failure."""
        return time.monotonic() >= self._skip_until

    async def put(self, key: str, value: dict[str, Any], ttl: int) -> None:
        """Store `value` under `key` for `ttl` seconds (best effort)."""
        if not self.available:
            return
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self._put(key, text, ttl)
        except Exception as exc:  # any cache failure: back off, the database answers
            self._fail("put", exc)

    async def get(self, key: str) -> dict[str, Any] | None:
        """The live value under `key`, None when missing, expired or unreachable."""
        if not self.available:
            return None
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                text = await self._get(key)
        except Exception as exc:  # any cache failure: back off, the database answers
            self._fail("get", exc)
            return None
        if text is None:
            return None
        value = json.loads(text)
        return value if isinstance(value, dict) else None

    def _fail(self, operation: str, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning("events.cache_unavailable", operation=operation, error=str(exc)[:200])

    @abc.abstractmethod
    async def _put(self, key: str, text: str, ttl: int) -> None: ...

    @abc.abstractmethod
    async def _get(self, key: str) -> str | None: ...


class RedisStatusCache(StatusCache):
    """Entries in Redis (`SET key value EX ttl`), shared by every replica."""

    def __init__(self, client: Redis) -> None:
        super().__init__()
        self._client = client

    async def _put(self, key: str, text: str, ttl: int) -> None:
        await self._client.set(key, text, ex=ttl)

    async def _get(self, key: str) -> str | None:
        value = await self._client.get(key)
        return None if value is None else str(value)


class MemoryStatusCache(StatusCache):
    """Entries in this process (the embedded default has one process)."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, tuple[float, str]] = {}

    async def _put(self, key: str, text: str, ttl: int) -> None:
        now = time.monotonic()
        if len(self._entries) > 100_000:  # drop expired entries now and then
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        self._entries[key] = (now + ttl, text)

    async def _get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]


_CACHES: weakref.WeakKeyDictionary[Broker, StatusCache] = weakref.WeakKeyDictionary()


def status_cache(broker: Broker) -> StatusCache:
    """The cache that goes with a broker: its Redis, or this process's memory."""
    cache = _CACHES.get(broker)
    if cache is None:
        # The broker's own connection pool: no second client to configure.
        client = broker._client if isinstance(broker, RedisBroker) else None
        cache = RedisStatusCache(client) if client is not None else MemoryStatusCache()
        _CACHES[broker] = cache
    return cache


async def record_event(broker: Broker, event: Event) -> None:
    """Cache what an event tells: a server's status or metrics, a node's metrics."""
    kind = event.known_type
    cache = status_cache(broker)
    stamped = {"at": event.timestamp, **event.data}
    if kind is EventType.SERVER_STATUS and event.server_id is not None:
        key = keys.server_status_cache_key(event.server_id)
        await cache.put(key, stamped, keys.SERVER_STATUS_CACHE_TTL)
    elif kind is EventType.SERVER_METRICS and event.server_id is not None:
        await cache.put(server_metrics_cache_key(event.server_id), stamped, METRICS_TTL)
    elif kind is EventType.NODE_HEARTBEAT and isinstance(event.data.get("metrics"), dict):
        key = keys.node_metrics_cache_key(event.node_id)
        await cache.put(key, event.data["metrics"], keys.NODE_METRICS_CACHE_TTL)


async def record_node_status(broker: Broker, node_id: str, status: NodeStatus) -> None:
    """Cache a node's new status."""
    value = {"status": status.value, "at": time.time()}
    await status_cache(broker).put(node_status_cache_key(node_id), value, 30)


async def cached_server_status(
    broker: Broker, db: AsyncSession, server_id: uuid.UUID
) -> CachedValue | None:
    """A server's status: the cache when fresh, else the database; None for no such server."""
    cached = await status_cache(broker).get(keys.server_status_cache_key(str(server_id)))
    if cached is not None:
        return CachedValue(cached, "cache")
    server = await db.get(Server, server_id)
    if server is None:
        return None
    return CachedValue({"status": server.status.value}, "database")


async def cached_server_metrics(broker: Broker, server_id: uuid.UUID) -> dict[str, Any] | None:
    """A server's latest metrics (at most 10 s old), None when unknown or Redis is down."""
    return await status_cache(broker).get(server_metrics_cache_key(str(server_id)))


async def cached_node_status(
    broker: Broker, db: AsyncSession, node_id: uuid.UUID
) -> CachedValue | None:
    """A node's status and metrics: the cache when fresh, else the database."""
    cache = status_cache(broker)
    status = await cache.get(node_status_cache_key(str(node_id)))
    metrics = await cache.get(keys.node_metrics_cache_key(str(node_id)))
    if status is not None:
        return CachedValue({**status, "metrics": metrics}, "cache")
    node = await db.get(Node, node_id)
    if node is None:
        return None
    value = {"status": node.status.value, "metrics": metrics or node.last_metrics}
    return CachedValue(value, "database")
