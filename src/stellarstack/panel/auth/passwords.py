"""Password hashing with Argon2id (pwdlib), transparent rehash on sign-in, and the policy."""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from stellarstack.panel.errors import FieldError, ValidationFailed

__all__ = [
    "DUMMY_HASH",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "check_password_policy",
    "hash_password",
    "password_problem",
    "verify_password",
]

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the account does not exist, so both answers take the same time.
DUMMY_HASH = _hasher.hash("stellarstack-timing-equaliser")
MIN_PASSWORD = 8
# Long enough for any passphrase, short enough that hashing it cannot be used as a flood.
MAX_PASSWORD = 1024


def hash_password(password: str) -> str:
    """Hash a password for storage."""
    return _hasher.hash(password)


def verify_password(password: str, stored: str | None) -> tuple[bool, str | None]:
    """Check a password; return (valid, new hash when the stored one should be upgraded)."""
    valid, updated = _hasher.verify_and_update(password, stored or DUMMY_HASH)
    if stored is None:
        return False, None
    return bool(valid), updated


def password_problem(password: str, email: str | None) -> str | None:
    """Why a new password is not acceptable, or None when it is."""
    if len(password) < MIN_PASSWORD:
        return f"Use at least {MIN_PASSWORD} characters."
    if len(password) > MAX_PASSWORD:
        return f"Use at most {MAX_PASSWORD} characters."
    if not password.strip():
        return "A password cannot be only spaces."
    if email and password.strip().lower() == email.strip().lower():
        return "Your password cannot be your email address."
    return None


def check_password_policy(password: str, email: str | None, field: str = "password") -> None:
    """Raise 422 naming `field` when a new password breaks the policy."""
    problem = password_problem(password, email)
    if problem:
        raise ValidationFailed([FieldError(field, problem)], problem)
