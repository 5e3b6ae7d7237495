"""Republish what the panel learns on pub/sub, for live pages (SSE) on any replica.

Channels (Redis pub/sub, or in process on the embedded default):

- `stellar:nodes:{node_id}:events` — every event of that node, plus `node.status` changes;
- `stellar:servers:{server_id}:status|metrics|logs` — a server's own events;
- `stellar:events:global` — `node.status` changes (admin pages watch all nodes).

A message is the event's JSON (`{"id", "type", "nodeId", "serverId"?, "timestamp", "data"}`).
Publishing is best effort: live views resync from the database, so a lost message is stale
for one refresh, never lost state.

Every event but console lines (`server.log`, which the console WebSocket carries) is also
appended to the replay log `stellar:events:log` (a stream capped at about `REPLAY_LOG_MAXLEN`
entries): the SSE stream of every replica tails it, and its entry ids are the SSE event ids a
browser resumes from with `Last-Event-ID` (see `stream.py`). Server status and metrics and node
metrics and status are cached on the way (`cache.py`).
"""

from __future__ import annotations

import json
from typing import Any

from stellarstack.broker import Broker, BrokerError
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.domain.events.cache import record_event, record_node_status
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, EventType
from stellarstack.protocol.wire import new_message_id, now

__all__ = [
    "EVENTS_LOG",
    "NODE_STATUS_EVENT",
    "REPLAY_LOG_MAXLEN",
    "publish_event",
    "publish_node_status",
]

log = get_logger(__name__)

NODE_STATUS_EVENT = "node.status"
"""Type of the event the panel emits when a node's status changes."""

EVENTS_LOG = "stellar:events:log"
"""The replay log: every fanned-out event, in order, shared by all replicas."""

REPLAY_LOG_MAXLEN = 10_000
"""About how many events the replay log keeps (older ones are trimmed)."""

_NOT_LOGGED = frozenset({EventType.SERVER_LOG.value})

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


async def _log(
    broker: Broker, event_type: str, node_id: str, server_id: str | None, text: str
) -> None:
    """Append to the replay log (best effort, like publishing)."""
    if event_type in _NOT_LOGGED:
        return
    fields = {"type": event_type, "node": node_id, "server": server_id or "", "message": text}
    try:
        await broker.append(EVENTS_LOG, fields, maxlen=REPLAY_LOG_MAXLEN)
    except BrokerError as exc:
        log.warning("events.log_failed", error=str(exc))


async def publish_event(broker: Broker, event: Event) -> None:
    """Fan a node's event out to its node channel and, if it names a server, the server's."""
    text = _dumps(event.to_wire())
    # The replay log first: every SSE client waits on it.
    await _log(broker, event.type, event.node_id, event.server_id, text)
    await _publish(broker, keys.node_events_stream(event.node_id), text)
    server_channel = _SERVER_CHANNELS.get(event.known_type)  # type: ignore[arg-type]
    if event.server_id is not None and server_channel is not None:
        await _publish(broker, server_channel(event.server_id), text)
    await record_event(broker, event)


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
    await _log(broker, NODE_STATUS_EVENT, node_id, None, text)
    await record_node_status(broker, node_id, status)
    log.info(
        "node.status_changed",
        node_id=node_id,
        status=status.value,
        previous=previous.value,
        reason=reason,
    )
