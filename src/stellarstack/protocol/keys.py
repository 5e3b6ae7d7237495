"""Names of the Redis streams, consumer groups, pub/sub channels and cache keys (spec §3.1.4).

Every name a node's daemon touches starts with ``stellar:nodes:{node_id}:`` so that one Redis
ACL user per node (``node_acl_key_pattern``) can be limited to its own keys and channels.
Server channels are published by the panel, which fans out what nodes report on their own
event streams; a daemon never writes to them.
"""

from __future__ import annotations

import re

from stellarstack.protocol.errors import InvalidIdentifierError

__all__ = [
    "COMMANDS_GROUP",
    "COMMANDS_MAXLEN",
    "EVENTS_GROUP",
    "EVENTS_MAXLEN",
    "GLOBAL_EVENTS_CHANNEL",
    "NODE_METRICS_CACHE_TTL",
    "SERVER_STATUS_CACHE_TTL",
    "check_identifier",
    "node_acl_channel_pattern",
    "node_acl_key_pattern",
    "node_acl_username",
    "node_commands_stream",
    "node_events_stream",
    "node_heartbeat_channel",
    "node_metrics_cache_key",
    "server_logs_channel",
    "server_metrics_channel",
    "server_status_cache_key",
    "server_status_channel",
]

COMMANDS_GROUP = "daemon"
"""Consumer group of a node's daemon on its command stream."""

EVENTS_GROUP = "panel"
"""Consumer group of the panel replicas on every node's event stream (each event applied once)."""

COMMANDS_MAXLEN = 10_000
"""Approximate length the panel trims a command stream to when appending."""

EVENTS_MAXLEN = 10_000
"""Approximate length a daemon trims its event stream to when appending."""

GLOBAL_EVENTS_CHANNEL = "stellar:events:global"
"""Platform-wide events (pub/sub)."""

SERVER_STATUS_CACHE_TTL = 30
"""Seconds a cached server status stays valid."""

NODE_METRICS_CACHE_TTL = 10
"""Seconds cached node metrics stay valid."""

# Ids go inside key names and ACL glob patterns: `:`, `*`, `?`, `[`, spaces or `\` in an id
# would let one node's credentials match another node's keys.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_identifier(value: str, *, kind: str = "id") -> str:
    """Return `value` if it is safe inside a key name; raise InvalidIdentifierError otherwise."""
    if not isinstance(value, str) or _IDENTIFIER.fullmatch(value) is None:
        raise InvalidIdentifierError(
            f"invalid {kind} {value!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def _node(node_id: str) -> str:
    return f"stellar:nodes:{check_identifier(node_id, kind='node id')}"


def _server(server_id: str) -> str:
    return f"stellar:servers:{check_identifier(server_id, kind='server id')}"


def node_commands_stream(node_id: str) -> str:
    """Stream of panel → daemon commands for one node."""
    return f"{_node(node_id)}:commands"


def node_events_stream(node_id: str) -> str:
    """Stream of daemon → panel events (status, metrics, heartbeats, results) of one node."""
    return f"{_node(node_id)}:events"


def node_heartbeat_channel(node_id: str) -> str:
    """Pub/sub channel for a node's health checks."""
    return f"{_node(node_id)}:heartbeat"


def node_acl_username(node_id: str) -> str:
    """Redis ACL user of a node (its password is the node API token)."""
    return f"node-{check_identifier(node_id, kind='node id')}"


def node_acl_key_pattern(node_id: str) -> str:
    """Redis ACL key pattern (`~…`) covering every key of one node."""
    return f"{_node(node_id)}:*"


def node_acl_channel_pattern(node_id: str) -> str:
    """Redis ACL channel pattern (`&…`) covering every channel of one node."""
    return f"{_node(node_id)}:*"


def server_status_channel(server_id: str) -> str:
    """Pub/sub channel of a server's status changes."""
    return f"{_server(server_id)}:status"


def server_metrics_channel(server_id: str) -> str:
    """Pub/sub channel of a server's resource metrics."""
    return f"{_server(server_id)}:metrics"


def server_logs_channel(server_id: str) -> str:
    """Pub/sub channel of a server's console output."""
    return f"{_server(server_id)}:logs"


def server_status_cache_key(server_id: str) -> str:
    """Cache key of a server's last known status (TTL `SERVER_STATUS_CACHE_TTL`)."""
    return f"cache:server:{check_identifier(server_id, kind='server id')}:status"


def node_metrics_cache_key(node_id: str) -> str:
    """Cache key of a node's last metrics (TTL `NODE_METRICS_CACHE_TTL`)."""
    return f"cache:node:{check_identifier(node_id, kind='node id')}:metrics"
