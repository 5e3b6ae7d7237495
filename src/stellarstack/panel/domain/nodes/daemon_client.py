"""Panel → daemon HTTPS: trust only the panel CA, and only the certificate of the node called.

The TLS server name checked is `node_tls_name(node_id)`, whatever address the URL holds, so
a valid certificate of *another* node (same CA) fails verification just as a foreign CA does.
`node_ssl_context` gives such a context for one node; `node_tls_factory` adapts it to the
`tls=` hook of the panel's one daemon client, `panel.daemon_client.DaemonClient` (timeouts
and the circuit breaker); `daemon_health` asks a daemon through that client::

    client = DaemonClient(timeout=3, tls=node_tls_factory(pki.ca.certificate_pem))
    health = await daemon_health(client, node)   # DaemonHealth(reachable=..., trusted=...)
"""

from __future__ import annotations

import math
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stellarstack.logs import get_logger
from stellarstack.panel.daemon_client import (
    CircuitOpen,
    DaemonClient,
    DaemonUnavailable,
    DaemonUntrusted,
    NodeAddress,
)
from stellarstack.panel.domain.nodes.ca import node_tls_name

__all__ = [
    "DaemonHealth",
    "NodeSSLContext",
    "daemon_health",
    "node_ssl_context",
    "node_tls_factory",
    "unavailable_reason",
]

log = get_logger(__name__)


class NodeSSLContext(ssl.SSLContext):
    """A client context that verifies the peer as `expected_name`, not as the URL's host."""

    expected_name: str

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """Wrap with the node's name (asyncio and httpx call this for every connection)."""
        return super().wrap_bio(incoming, outgoing, server_side, self.expected_name, session)

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap a blocking socket with the node's name."""
        kwargs["server_hostname"] = self.expected_name
        return super().wrap_socket(sock, *args, **kwargs)


def node_ssl_context(ca_pem: str, node_id: str | uuid.UUID) -> NodeSSLContext:
    """Trust the panel CA alone, and accept only the certificate naming `node_id`."""
    context = NodeSSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.expected_name = node_tls_name(str(node_id))
    context.load_verify_locations(cadata=ca_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Addressed(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


def node_tls_factory(ca_pem: str) -> Callable[[_Addressed], ssl.SSLContext | bool]:
    """The `tls=` hook of DaemonClient: a node's context from its id."""

    def for_node(node: _Addressed) -> ssl.SSLContext | bool:
        return node_ssl_context(ca_pem, node.id)

    return for_node


@dataclass(frozen=True, slots=True)
class DaemonHealth:
    """What a daemon said to `GET /health`, and whether it is the node it should be."""

    reachable: bool
    trusted: bool
    status: str | None = None
    version: str | None = None
    node_id: str | None = None
    error: str | None = None


def _text(value: object, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


async def daemon_health(client: DaemonClient, node: NodeAddress) -> DaemonHealth:
    """Ask the node's daemon for its health; raises `DaemonUnavailable` (and subclasses)."""
    body = await client.health(node)
    reported = body.get("nodeId") or body.get("node_id")
    if reported is not None and str(reported) != str(node.id):
        log.warning("nodes.daemon_wrong_node", node_id=str(node.id), reported=_text(reported, 64))
        return DaemonHealth(
            True, False, error=f"The daemon says it is node {_text(reported, 64)}, not this one."
        )
    return DaemonHealth(
        reachable=True,
        trusted=node.scheme == "https",  # over https the client verified the CA and node id
        status=_text(body.get("status", "unknown"), 32),
        version=_text(body.get("version"), 64),
        node_id=_text(reported, 64),
        error=None if node.scheme == "https" else "Plain HTTP: the daemon's identity is unchecked.",
    )


def unavailable_reason(name: str, exc: DaemonUnavailable) -> str:
    """What a person reads when a node's daemon could not be asked."""
    if isinstance(exc, CircuitOpen):
        return (
            f"The daemon of node {name!r} is not answering; the panel tries again in "
            f"{max(1, math.ceil(exc.retry_after))} s."
        )
    if isinstance(exc, DaemonUntrusted):
        return (
            f"The daemon of node {name!r} presented a certificate that is not this node's: "
            "re-register the daemon, or check that the node's address points at it."
        )
    return f"The daemon of node {name!r} is not answering ({exc})."
