"""The Broker seam: reliable streams with consumer groups, and pub/sub.

Two implementations share one contract test suite: `RedisBroker` (production, several panel
replicas and daemons) and `MemoryBroker` (the embedded default, one process).

Usage::

    broker = MemoryBroker()
    await broker.ensure_group("stellar:nodes:n1:commands", "daemon")
    await broker.append("stellar:nodes:n1:commands", {"type": "server.start"})
    for msg in await broker.read_group("stellar:nodes:n1:commands", "daemon", "c1", block_ms=1000):
        ...  # execute
        await broker.ack("stellar:nodes:n1:commands", "daemon", msg.id)
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

__all__ = ["Broker", "BrokerError", "BrokerUnavailable", "PubSubMessage", "StreamMessage"]


class BrokerError(Exception):
    """Base class of broker errors."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached (Redis down, connection refused, timeout)."""


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One stream entry. `deliveries` counts how often a group handed it out (1 = first time)."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """One message received on a pub/sub channel."""

    channel: str
    data: str


class Broker(abc.ABC):
    """Streams (append, consumer groups, ack, reclaim, trim, plain reads) and pub/sub."""

    @abc.abstractmethod
    async def ping(self) -> float:
        """Round trip to the broker in milliseconds; raises BrokerUnavailable."""

    @abc.abstractmethod
    async def append(
        self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None
    ) -> str:
        """Append an entry (XADD), optionally trimming to about `maxlen`; return its id."""

    @abc.abstractmethod
    async def read(
        self, streams: Mapping[str, str], *, count: int = 100, block_ms: int | None = None
    ) -> list[tuple[str, StreamMessage]]:
        """Entries after the given ids (XREAD), without a group: for SSE resume and tails."""

    @abc.abstractmethod
    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create the consumer group (and the stream) if missing."""

    @abc.abstractmethod
    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[StreamMessage]:
        """New entries for this consumer (XREADGROUP >); they stay pending until acked."""

    @abc.abstractmethod
    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Acknowledge entries; return how many were pending."""

    @abc.abstractmethod
    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[StreamMessage]:
        """Take over entries pending longer than `min_idle_ms` (XAUTOCLAIM), deliveries +1."""

    @abc.abstractmethod
    async def pending_count(self, stream: str, group: str) -> int:
        """How many entries are delivered but not yet acknowledged."""

    @abc.abstractmethod
    async def trim(self, stream: str, *, maxlen: int) -> int:
        """Keep the newest `maxlen` entries; return how many were removed."""

    @abc.abstractmethod
    async def length(self, stream: str) -> int:
        """Number of entries in the stream (0 when it does not exist)."""

    @abc.abstractmethod
    async def publish(self, channel: str, data: str) -> int:
        """Publish on a channel; return the number of receivers."""

    @abc.abstractmethod
    def subscribe(self, *channels: str) -> AsyncIterator[PubSubMessage]:
        """Receive messages published on the channels from now on, until the iterator closes."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and wake blocked readers."""
