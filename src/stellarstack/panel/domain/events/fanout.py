"""Republish what the panel learns on pub/sub, for live pages (SSE) on any replica.

Channels (Redis pub/sub, or in process on the embedded default):

- `stellar:nodes:{node_id}:events` — every event of that node, plus `node.status` changes;
- `stellar:servers:{server_id}:status|metrics|logs` — a server's own events;
- `stellar:events:global` — `node.status` changes (admin pages watch all nodes).

A message is the event's JSON (`{"id", "type", "nodeId", "serverId"?, "timestamp", "data"}`).
Publishing is best effort: live views resync from the database, so a lost message is stale
for one refresh, never lost state.
"""

from __future__ import annotations

import json
from typing import Any

from stellarstack.broker import Broker, BrokerError
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, EventType
from stellarstack.protocol.wire import new_message_id, now

__all__ = ["NODE_STATUS_EVENT", "publish_event", "publish_node_status"]

log = get_logger(__name__)

NODE_STATUS_EVENT = "node.status"
"""Type of the event the panel emits when a node's status changes."""

_SERVER_CHANNELS = {
    EventType.SERVER_STATUS: keys.server_status_channel,
    EventType.SERVER_METRICS: keys.server_metrics_channel,
    EventType.SERVER_LOG: keys.server_logs_channel,
}


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


async def _publish(broker: Broker, channel: str, text: str) -> None:
    try:
        await broker.publish(channel, text)
    except BrokerError as exc:
        log.warning("events.publish_failed", channel=channel, error=str(exc))


async def publish_event(broker: Broker, event: Event) -> None:
    """Fan a node's event out to its node channel and, if it names a server, the server's."""
    text = _dumps(event.to_wire())
    await _publish(broker, keys.node_events_stream(event.node_id), text)
    server_channel = _SERVER_CHANNELS.get(event.known_type)  # type: ignore[arg-type]
    if event.server_id is not None and server_channel is not None:
        await _publish(broker, server_channel(event.server_id), text)


async def publish_node_status(
    broker: Broker, node_id: str, status: NodeStatus, previous: NodeStatus, reason: str
) -> None:
    """Announce a node status change on the node's channel and the global one."""
    message = {
        "id": new_message_id(),
        "type": NODE_STATUS_EVENT,
        "nodeId": node_id,
        "timestamp": now(),
        "data": {"status": status.value, "previous": previous.value, "reason": reason},
    }
    text = _dumps(message)
    await _publish(broker, keys.node_events_stream(node_id), text)
    await _publish(broker, keys.GLOBAL_EVENTS_CHANNEL, text)
    log.info(
        "node.status_changed",
        node_id=node_id,
        status=status.value,
        previous=previous.value,
        reason=reason,
    )
