"""Publish this node's events (heartbeats, command results, status) to its event stream."""

from __future__ import annotations

from stellarstack.broker import Broker
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, EventData

__all__ = ["EventPublisher"]


class EventPublisher:
    """Append events of one node to `stellar:nodes:{node_id}:events` (trimmed to about 10k)."""

    def __init__(self, broker: Broker, node_id: str) -> None:
        self._broker = broker
        self.node_id = node_id
        self.stream = keys.node_events_stream(node_id)

    async def publish(self, data: EventData, *, server_id: str | None = None) -> str:
        """Append one event; return its stream entry id."""
        event = Event.create(data, node_id=self.node_id, server_id=server_id)
        return await self._broker.append(self.stream, event.to_fields(), maxlen=keys.EVENTS_MAXLEN)
