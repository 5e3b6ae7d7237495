"""What the panel needs to admit nodes: its CA, its signing key and the node ACL provisioner.

Loaded once per app from the settings (created on first use) and kept on `app.state`::

    pki = node_pki(request)          # in a route
    pki.ca.issue(...); pki.signing_key.public_key_pem; await pki.credentials.grant(...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from starlette.requests import Request

from stellarstack.panel.domain.nodes.ca import NodeCA
from stellarstack.panel.domain.nodes.credentials import NodeCredentials
from stellarstack.panel.domain.nodes.signing_key import PanelSigningKey
from stellarstack.settings import PanelSettings

__all__ = ["NodePki", "ca_directory", "node_pki", "node_redis_url"]


def ca_directory(settings: PanelSettings) -> Path:
    """Where the CA and signing key live (`STELLAR_CA_DIR`, or `<data_dir>/ca`)."""
    return settings.ca_dir or settings.data_dir / "ca"


def node_redis_url(settings: PanelSettings) -> str | None:
    """The Redis URL nodes get: the configured one, or the panel's without its credentials."""
    if settings.node_redis_url:
        return settings.node_redis_url
    if not settings.redis_url or not settings.redis_url.startswith(("redis", "unix")):
        return None
    parts = urlsplit(settings.redis_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class NodePki:
    """The CA, the panel signing key and the Redis ACL provisioner of one panel."""

    ca: NodeCA
    signing_key: PanelSigningKey
    credentials: NodeCredentials

    @classmethod
    def load(cls, settings: PanelSettings) -> NodePki:
        """Load (or create on first start) the CA and key; connect nothing yet."""
        directory = ca_directory(settings)
        return cls(
            NodeCA.load_or_create(directory),
            PanelSigningKey.load_or_create(directory),
            NodeCredentials(settings.redis_url, timeout=settings.dependency_timeout * 2),
        )


async def node_pki(request: Request) -> NodePki:
    """The app's NodePki, loaded on first use (in the event loop: one load per process)."""
    pki: NodePki | None = getattr(request.app.state, "node_pki", None)
    if pki is None:
        pki = NodePki.load(request.app.state.settings)
        request.app.state.node_pki = pki
    return pki
