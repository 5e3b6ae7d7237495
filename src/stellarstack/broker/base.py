"""The Broker seam: reliable streams with consumer groups, and pub/sub.

Two implementations share one contract test suite: `RedisBroker` (production, several panel
replicas and daemons) and `MemoryBroker` (the embedded default, one process). The broker is
key-agnostic; key names live in the protocol package.

Usage::

    broker = MemoryBroker()
    await broker.ensure_group("stellar:nodes:n1:commands", "daemon")
    await broker.append("stellar:nodes:n1:commands", {"type": "server.start"})
    for msg in await broker.read_group("stellar:nodes:n1:commands", "daemon", "c1", block_ms=1000):
        ...  # execute
        await broker.ack("stellar:nodes:n1:commands", "daemon", msg.id)

    async with broker.subscribe("stellar:events") as sub:  # subscribed once entered
        async for message in sub:
            ...

Most callers want `StreamConsumer` (reclaim, dead-letter, ack) rather than this loop.

Blocking reads: `block_ms=None` or `0` returns at once; a positive value waits up to that long
for an entry (unlike Redis, `0` never means "forever").

Errors::

    BrokerError
    ├── BrokerUnavailable       cannot reach the broker (down, refused, timeout, closed)
    ├── BrokerPermissionDenied  these credentials may not touch that key or channel (Redis ACL)
    ├── GroupNotFound           no such stream or consumer group (e.g. Redis restarted empty)
    └── InvalidStreamId         not an entry id such as "1700000000000-0" (also a ValueError)
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerPermissionDenied",
    "BrokerUnavailable",
    "GroupNotFound",
    "InvalidStreamId",
    "PendingEntry",
    "PubSubMessage",
    "StreamMessage",
    "Subscription",
    "format_stream_id",
    "parse_stream_id",
]


class BrokerError(Exception):
    """Base class of broker errors."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached (Redis down, connection refused, timeout, closed)."""


class BrokerPermissionDenied(BrokerError):
    """The broker refused the command for these credentials (a Redis ACL NOPERM)."""


class GroupNotFound(BrokerError):
    """The stream or its consumer group does not exist: call `ensure_group` again."""


class InvalidStreamId(BrokerError, ValueError):
    """A string that is not a stream entry id (`<ms>-<seq>`, both unsigned 64-bit)."""


_ID_PART_MAX = 2**64 - 1
_ID_PATTERN = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?", re.ASCII)


def parse_stream_id(value: str) -> tuple[int, int]:
    """Parse `"<ms>-<seq>"` (or `"<ms>"`, meaning seq 0) into a comparable pair."""
    match = _ID_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidStreamId(f"not a stream entry id: {value!r}")
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > _ID_PART_MAX or seq > _ID_PART_MAX:
        raise InvalidStreamId(f"stream entry id out of range: {value!r}")
    return ms, seq


def format_stream_id(key: tuple[int, int]) -> str:
    """The `"<ms>-<seq>"` spelling of a parsed id."""
    return f"{key[0]}-{key[1]}"


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One stream entry. `deliveries` counts how often a group handed it out (1 = first time)."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A delivered, unacknowledged entry of a consumer group (one XPENDING row)."""

    id: str
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """One message received on a pub/sub channel."""

    channel: str
    data: str


class Subscription(AsyncIterator[PubSubMessage], abc.ABC):
    """Messages published on some channels; iterate it inside `async with` so it is released.

    Entering (or `start()`) returns once the broker confirmed the subscription: anything
    published afterwards is received. Iteration ends when the subscription or broker closes.
    """

    channels: tuple[str, ...]

    @abc.abstractmethod
    async def start(self) -> None:
        """Subscribe now (idempotent); the first `__anext__` calls it too."""

    @abc.abstractmethod
    async def __anext__(self) -> PubSubMessage:
        """The next message; StopAsyncIteration once closed."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Unsubscribe and release the connection; a blocked `__anext__` stops."""

    def __aiter__(self) -> Self:
        """The subscription is its own iterator."""
        return self

    async def __aenter__(self) -> Self:
        """Subscribe and return self."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Unsubscribe."""
        await self.aclose()


class Broker(abc.ABC):
    """Streams (append, consumer groups, ack, reclaim, trim, plain reads) and pub/sub."""

    @abc.abstractmethod
    async def ping(self) -> float:
        """Round trip to the broker in milliseconds; raises BrokerUnavailable."""

    @abc.abstractmethod
    async def append(
        self, stream: str, fields: Mapping[str, str], *, maxlen: int | None = None
    ) -> str:
        """Append an entry (XADD), optionally trimming to about `maxlen`; return its id.

        `fields` must not be empty (ValueError).
        """

    @abc.abstractmethod
    async def read(
        self, streams: Mapping[str, str], *, count: int = 100, block_ms: int | None = None
    ) -> list[tuple[str, StreamMessage]]:
        """Entries after the given ids (XREAD), without a group: for SSE resume and tails.

        An id is an entry id (`"0"` for the start) or `"$"` (only entries appended from now;
        useful with `block_ms`). Entries of one stream come in id order.
        """

    @abc.abstractmethod
    async def last_id(self, stream: str) -> str:
        """Id of the newest entry, `"0-0"` when the stream is empty: where a tail starts."""

    @abc.abstractmethod
    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create the consumer group (and the stream) if missing.

        `start_id` `"0"` hands out existing entries too, `"$"` only entries appended later.
        """

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
        """New entries for this consumer (XREADGROUP >); they stay pending until acked.

        Raises GroupNotFound when the group does not exist.
        """

    @abc.abstractmethod
    async def read_groups(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[tuple[str, StreamMessage]]:
        """New entries of several streams in one call (one XREADGROUP … STREAMS s1 s2 … > >).

        `count` applies per stream; entries of one stream come in id order, tagged with their
        stream. A blocking read wakes on an append to any of them. Raises GroupNotFound when
        the group is missing on any of the streams (nothing is delivered then).
        """

    @abc.abstractmethod
    async def ack(self, stream: str, group: str, *ids: str) -> int:
        """Acknowledge entries; return how many were pending."""

    @abc.abstractmethod
    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[StreamMessage]:
        """Take over entries pending longer than `min_idle_ms` (XAUTOCLAIM), deliveries +1.

        Pending entries already trimmed from the stream are dropped from the group, not returned.
        """

    @abc.abstractmethod
    async def pending_count(self, stream: str, group: str) -> int:
        """How many entries are delivered but not yet acknowledged."""

    @abc.abstractmethod
    async def pending(self, stream: str, group: str, *, count: int = 100) -> list[PendingEntry]:
        """The oldest pending entries of a group with owner, idle time and delivery count."""

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
    def subscribe(self, *channels: str) -> Subscription:
        """Messages published on the channels once subscribed (see `Subscription`)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and wake blocked readers (they get no entries).

        Open subscriptions end; later calls raise BrokerUnavailable.
        """

    async def __aenter__(self) -> Self:
        """Use the broker as `async with`: it closes on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the broker."""
        await self.close()
