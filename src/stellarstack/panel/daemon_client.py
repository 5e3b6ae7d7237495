"""Panel → daemon HTTP calls: short timeouts and a circuit breaker per node (spec §12.4.2).

A node that stops answering costs at most `failures_to_open` timed-out calls; after that its
breaker is open and calls fail at once with `CircuitOpen` (no socket is touched) until
`reset_after` seconds pass; then one probe call is let through (half-open): success closes
the breaker, failure opens it again. So an offline node never makes a page or API call hang.

TLS: daemons serve HTTPS with a certificate from the panel's CA. The panel passes
`tls=node_tls_factory(ca_pem)` (`panel/domain/nodes/daemon_client.py`): for each node, an SSL
context that trusts that CA alone and checks the node id. A certificate that fails that check
raises `DaemonUntrusted`. Without `tls=`, HTTPS uses the system trust store.

Usage::

    client = DaemonClient(timeout=3, failures_to_open=3, reset_after=30)
    try:
        health = await client.health(node)
    except DaemonUnavailable as exc:
        ...  # exc.retry_after: seconds until the breaker lets a probe through
    await client.aclose()

Errors::

    DaemonUnavailable      the call failed (refused, timed out, 5xx)
    ├── DaemonUntrusted    the daemon's certificate is not the node's (foreign CA, other node)
    └── CircuitOpen        not attempted: the node's breaker is open
"""

from __future__ import annotations

import enum
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from stellarstack.logs import get_logger

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpen",
    "DaemonClient",
    "DaemonUnavailable",
    "DaemonUntrusted",
    "NodeAddress",
    "TlsFactory",
]

log = get_logger(__name__)


class DaemonUnavailable(Exception):
    """A call to a daemon failed; `retry_after` is when trying again makes sense (seconds)."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DaemonUntrusted(DaemonUnavailable):
    """The daemon answered TLS with a certificate that is not the node's own."""


class CircuitOpen(DaemonUnavailable):
    """The node's breaker is open: the call was refused without touching the network."""


class BreakerState(enum.StrEnum):
    """Where a breaker is: calls pass (closed), fail fast (open), or one probes (half-open)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed → open after `failures_to_open` failures in a row → half-open after `reset_after`."""

    def __init__(
        self,
        failures_to_open: int,
        reset_after: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (open turns half-open once `reset_after` has passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def retry_after(self) -> float:
        """Seconds until a probe call is allowed (0 when calls pass)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        if self._opened_at is not None:
            log.info("daemon_client.breaker_closed")
        self._failures, self._opened_at, self._probing = 0, None, False

    def record_failure(self) -> None:
        """A call failed: open after enough in a row, or again after a failed probe."""
        self._failures += 1
        if self._probing or self._failures >= self.failures_to_open:
            if self._opened_at is None or self._probing:
                log.warning("daemon_client.breaker_opened", failures=self._failures)
            self._opened_at = self._clock()
        self._probing = False


class NodeAddress(Protocol):
    """What the client needs to know about a node (a `Node` row fits)."""

    @property
    def id(self) -> uuid.UUID:
        """The node id."""

    @property
    def scheme(self) -> str:
        """`http` or `https`."""

    @property
    def fqdn(self) -> str:
        """Host name or address of the daemon."""

    @property
    def port(self) -> int:
        """Port of the daemon's HTTP server."""


TlsFactory = Callable[[NodeAddress], ssl.SSLContext | bool]
"""For a node: an SSL context trusting the panel CA and checking the node id (or True)."""


class DaemonClient:
    """HTTP calls to daemons, one breaker and one connection pool per node."""

    def __init__(
        self,
        *,
        timeout: float = 3.0,
        failures_to_open: int = 3,
        reset_after: float = 30.0,
        tls: TlsFactory | None = None,
    ) -> None:
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 2.0))
        self.failures_to_open = failures_to_open
        self.reset_after = reset_after
        self._tls = tls
        self._breakers: dict[uuid.UUID, CircuitBreaker] = {}
        self._clients: dict[uuid.UUID, httpx.AsyncClient] = {}

    def breaker(self, node_id: uuid.UUID) -> CircuitBreaker:
        """The breaker of one node (created closed)."""
        found = self._breakers.get(node_id)
        if found is None:
            found = CircuitBreaker(self.failures_to_open, self.reset_after)
            self._breakers[node_id] = found
        return found

    def _client(self, node: NodeAddress) -> httpx.AsyncClient:
        client = self._clients.get(node.id)
        if client is None:
            verify = self._tls(node) if self._tls is not None else True
            host = f"[{node.fqdn}]" if ":" in node.fqdn else node.fqdn
            client = httpx.AsyncClient(
                base_url=f"{node.scheme}://{host}:{node.port}",
                timeout=self.timeout,
                verify=verify,
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[node.id] = client
        return client

    async def request(
        self, node: NodeAddress, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """One call through the node's breaker; 5xx, timeouts and refusals count as failures."""
        breaker = self.breaker(node.id)
        if not breaker.allow():
            raise CircuitOpen(
                f"node {node.id} is not answering; not retrying for {breaker.retry_after:.0f} s",
                retry_after=breaker.retry_after,
            )
        try:
            response = await self._client(node).request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            breaker.record_failure()
            reason = str(exc) or type(exc).__name__
            if _untrusted(exc):
                log.warning("daemon_client.untrusted", node_id=str(node.id), error=reason)
                raise DaemonUntrusted(
                    f"node {node.id} presented a certificate that is not its own: {reason}",
                    retry_after=breaker.retry_after,
                ) from exc
            log.info("daemon_client.call_failed", node_id=str(node.id), path=path, error=reason)
            raise DaemonUnavailable(
                f"node {node.id} did not answer: {reason}", retry_after=breaker.retry_after
            ) from exc
        if response.status_code >= 500 and response.status_code != 503:
            breaker.record_failure()
            raise DaemonUnavailable(
                f"node {node.id} answered {response.status_code}", retry_after=breaker.retry_after
            )
        breaker.record_success()  # a 503 is an answer: the daemon runs but is degraded
        return response

    async def health(self, node: NodeAddress) -> dict[str, Any]:
        """The daemon's `/health` body (`status`, `version`, `runtime`, `nodeId`)."""
        response = await self.request(node, "GET", "/health")
        try:
            body = response.json()
        except ValueError as exc:
            raise DaemonUnavailable(
                f"node {node.id} sent a health answer that is not JSON"
            ) from exc
        if not isinstance(body, dict):
            raise DaemonUnavailable(f"node {node.id} sent a malformed health answer")
        return body

    async def forget(self, node_id: uuid.UUID) -> None:
        """Drop a node's breaker and close its connection pool (after it is deleted)."""
        self._breakers.pop(node_id, None)
        client = self._clients.pop(node_id, None)
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _untrusted(exc: BaseException) -> bool:
    """Whether a failed call failed on certificate verification."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)
