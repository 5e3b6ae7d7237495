"""Password hashing with Argon2id (pwdlib), with transparent rehash on sign-in."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

__all__ = ["DUMMY_HASH", "hash_password", "verify_password"]

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the account does not exist, so both answers take the same time.
DUMMY_HASH = _hasher.hash("stellarstack-timing-equaliser")


def hash_password(password: str) -> str:
    """Hash a password for storage."""
    return _hasher.hash(password)


def verify_password(password: str, stored: str | None) -> tuple[bool, str | None]:
    """Check a password; return (valid, new hash when the stored one should be upgraded)."""
    valid, updated = _hasher.verify_and_update(password, stored or DUMMY_HASH)
    if stored is None:
        return False, None
    return bool(valid), updated
