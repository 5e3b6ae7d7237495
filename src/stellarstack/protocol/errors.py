"""Errors raised while reading or writing the wire contract.

ProtocolError
├── MalformedMessageError     a stream entry or JSON body that does not fit the contract
└── InvalidIdentifierError    a node/server id that cannot be used inside a key name
"""

from __future__ import annotations

__all__ = ["InvalidIdentifierError", "MalformedMessageError", "ProtocolError"]


class ProtocolError(ValueError):
    """Base class of wire-contract errors."""


class MalformedMessageError(ProtocolError):
    """A message does not decode into the expected envelope."""


class InvalidIdentifierError(ProtocolError):
    """An identifier contains characters that would break key names or ACL patterns."""
