"""Streams with consumer groups and pub/sub behind one interface: Redis or in process.

`create_broker(url)` picks the implementation from the configured URL; `StreamConsumer` is the
reliable read loop (reclaim, dead-letter, ack) both the daemon and the panel run on it.
"""

from __future__ import annotations

from stellarstack.broker.base import (
    Broker,
    BrokerError,
    BrokerPermissionDenied,
    BrokerUnavailable,
    GroupNotFound,
    InvalidStreamId,
    PendingEntry,
    PubSubMessage,
    StreamMessage,
    Subscription,
    format_stream_id,
    parse_stream_id,
)
from stellarstack.broker.consumer import (
    Handler,
    MultiStreamConsumer,
    MultiStreamHandler,
    StreamConsumer,
    dead_letter_stream,
)
from stellarstack.broker.memory import MemoryBroker
from stellarstack.broker.redis import RedisBroker

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerPermissionDenied",
    "BrokerUnavailable",
    "GroupNotFound",
    "Handler",
    "InvalidStreamId",
    "MemoryBroker",
    "MultiStreamConsumer",
    "MultiStreamHandler",
    "PendingEntry",
    "PubSubMessage",
    "RedisBroker",
    "StreamConsumer",
    "StreamMessage",
    "Subscription",
    "create_broker",
    "dead_letter_stream",
    "format_stream_id",
    "parse_stream_id",
]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def create_broker(
    url: str | None, *, username: str | None = None, password: str | None = None
) -> Broker:
    """The broker a URL names: empty or memory:// in process, redis(s):// or unix:// Redis."""
    if not url or url == "memory://":
        return MemoryBroker()
    if url.lower().startswith(_REDIS_SCHEMES):
        return RedisBroker(url, username=username, password=password)
    scheme = url.split("://", 1)[0] if "://" in url else url
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r}: use redis://, rediss://, unix:// or memory://"
    )
