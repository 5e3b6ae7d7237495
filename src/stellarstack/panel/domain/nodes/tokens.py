"""Node secrets: one-time registration tokens (`strk_reg_…`) and node API tokens (`strk_node_…`).

Only SHA-256 hex digests are stored. For node tokens that digest is also the Redis ACL
password hash (`#…`), so it must stay plain SHA-256 of the token text.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = [
    "NODE_TOKEN_PREFIX",
    "REGISTRATION_TOKEN_PREFIX",
    "new_node_token",
    "new_registration_token",
    "token_hash",
]

REGISTRATION_TOKEN_PREFIX = "strk_reg_"  # noqa: S105 - a prefix, not a secret
NODE_TOKEN_PREFIX = "strk_node_"  # noqa: S105 - a prefix, not a secret
_TOKEN_BYTES = 32


def new_registration_token() -> str:
    """A fresh single-use registration token."""
    return REGISTRATION_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def new_node_token() -> str:
    """A fresh node API token (also the node's Redis password)."""
    return NODE_TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()
