"""Panel → daemon HTTPS: trust only the panel CA, and only the certificate of the node called.

The TLS server name checked is `node_tls_name(node_id)`, whatever address the URL holds, so
a valid certificate of *another* node (same CA) fails verification just as a foreign CA does.
`node_ssl_context` gives such a context for one node; `node_tls_factory` adapts it to the
`tls=` hook of `panel.daemon_client.DaemonClient` (timeouts and the circuit breaker)::

    async with daemon_client(ca_pem, node_id, timeout=5) as client:
        report = await probe_health(client, node)   # DaemonProbe(reachable=..., trusted=...)
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from stellarstack.logs import get_logger
from stellarstack.panel.db.models import Node
from stellarstack.panel.domain.nodes.ca import node_tls_name

__all__ = [
    "DaemonProbe",
    "NodeSSLContext",
    "daemon_client",
    "daemon_url",
    "node_ssl_context",
    "node_tls_factory",
    "probe_health",
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


def daemon_client(ca_pem: str, node_id: str | uuid.UUID, *, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for one node's daemon: its context, short timeouts, no redirects."""
    return httpx.AsyncClient(
        verify=node_ssl_context(ca_pem, node_id),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True, slots=True)
class DaemonProbe:
    """What `GET /health` on a daemon said (or why it could not be asked)."""

    reachable: bool
    trusted: bool
    status: str | None = None
    version: str | None = None
    node_id: str | None = None
    error: str | None = None


def daemon_url(node: Node, path: str) -> str:
    """The URL of `path` on the node's daemon."""
    host = f"[{node.fqdn}]" if ":" in node.fqdn else node.fqdn
    return f"{node.scheme}://{host}:{node.port}{path}"


async def probe_health(client: httpx.AsyncClient, node: Node) -> DaemonProbe:
    """Ask the node's daemon for /health over verified TLS; never raises for network trouble."""
    try:
        response = await client.get(daemon_url(node, "/health"))
    except httpx.ConnectError as exc:
        if isinstance(exc.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE" in str(exc):
            log.warning("nodes.daemon_untrusted", node_id=str(node.id), error=str(exc))
            return DaemonProbe(False, False, error=f"certificate not trusted: {exc}")
        return DaemonProbe(False, False, error=f"unreachable: {exc}")
    except httpx.HTTPError as exc:
        return DaemonProbe(False, False, error=f"unreachable: {exc!r}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    reported = body.get("nodeId") or body.get("node_id") if isinstance(body, dict) else None
    if reported is not None and str(reported) != str(node.id):
        return DaemonProbe(True, False, error=f"the daemon says it is node {reported!s:.64}")
    return DaemonProbe(
        True,
        node.scheme == "https",
        status=str(body.get("status")) if isinstance(body, dict) else None,
        version=str(body.get("version")) if isinstance(body, dict) else None,
        node_id=str(reported) if reported else None,
    )
