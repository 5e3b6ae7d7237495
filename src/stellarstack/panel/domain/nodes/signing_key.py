"""The panel's Ed25519 signing key: it signs console tokens; nodes hold the public half.

Created beside the CA on first start (private key 0600) and loaded afterwards; replicas share
it. Daemons receive `public_key_pem` at registration and verify tokens with it (DESIGN.md §2).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from stellarstack.logs import get_logger
from stellarstack.panel.domain.nodes.ca import directory_lock, write_private

__all__ = ["SIGNING_KEY_FILE", "PanelSigningKey"]

log = get_logger(__name__)

SIGNING_KEY_FILE = "panel-signing.key"


class PanelSigningKey:
    """An Ed25519 private key and its public PEM."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.private_key = key

    @property
    def public_key_pem(self) -> str:
        """The public key (SubjectPublicKeyInfo PEM) that daemons verify tokens with."""
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @classmethod
    def load_or_create(cls, directory: Path) -> PanelSigningKey:
        """Load the key from `directory`, creating it (mode 0600) on first use."""
        with directory_lock(directory):
            return cls._load_or_create(directory / SIGNING_KEY_FILE)

    @classmethod
    def _load_or_create(cls, path: Path) -> PanelSigningKey:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        log.info("nodes.signing_key_created", path=str(path))
        return cls(key)
