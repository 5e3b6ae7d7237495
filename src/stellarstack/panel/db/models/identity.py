"""Who people are and how they prove it: users, sessions, OAuth accounts, API keys, 2FA.

No secret is stored in plaintext: session cookies, API keys, recovery codes and one-time tokens
are kept as SHA-256 hex digests (`*_hash`), passwords as Argon2 hashes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from stellarstack.panel.db.base import (
    Base,
    CreatedAtMixin,
    TimestampMixin,
    UUIDPrimaryKeyMixin,
    enum_column_type,
)
from stellarstack.panel.db.enums import ApiKeyKind, Role, TokenPurpose

if TYPE_CHECKING:
    from stellarstack.panel.db.models.servers import Server, Subuser

__all__ = ["Account", "ApiKey", "OneTimeToken", "RecoveryCode", "Session", "User"]

# A SHA-256 hex digest.
HASH_LENGTH = 64
# The longest address RFC 5321 allows.
EMAIL_LENGTH = 320
# An IPv6 address in text form (IPv4-mapped included).
IP_LENGTH = 45

_OWNED_CHILDREN = "all, delete-orphan"


class User(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A person who signs in to the panel."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(sa.String(EMAIL_LENGTH), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    name: Mapped[str | None] = mapped_column(sa.String(255))
    image: Mapped[str | None] = mapped_column(sa.String(2048))
    # None for accounts that only sign in through OAuth.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(enum_column_type(Role), default=Role.USER)

    suspended: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    suspended_at: Mapped[datetime | None]
    suspend_reason: Mapped[str | None] = mapped_column(sa.Text)

    # Encrypted by the auth layer before it lands here, hence the generous width.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255))
    totp_enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # The last accepted 30-second step: a code for this step or an earlier one is refused.
    totp_last_used_step: Mapped[int | None] = mapped_column(sa.BigInteger)

    # Quotas; None means unlimited. CPU is in percent of one core (200 = two cores).
    max_servers: Mapped[int | None]
    max_memory_mb: Mapped[int | None]
    max_cpu: Mapped[int | None]
    max_disk_mb: Mapped[int | None]

    last_login_at: Mapped[datetime | None]
    # For billing and provisioning integrations (WHMCS, Paymenter…); added in 0002.
    external_id: Mapped[str | None] = mapped_column(sa.String(191), unique=True)

    sessions: Mapped[list[Session]] = relationship(
        back_populates="user", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    accounts: Mapped[list[Account]] = relationship(
        back_populates="user", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    api_keys: Mapped[list[ApiKey]] = relationship(
        back_populates="user", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        back_populates="user", cascade=_OWNED_CHILDREN, passive_deletes=True
    )
    servers: Mapped[list[Server]] = relationship(back_populates="owner", passive_deletes=True)
    subusers: Mapped[list[Subuser]] = relationship(
        back_populates="user", cascade=_OWNED_CHILDREN, passive_deletes=True
    )

    @validates("email")
    def _lowercase_email(self, _key: str, value: str) -> str:
        # Uniqueness must not depend on how someone typed their address.
        return value.strip().lower()


class Session(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A signed-in browser; the cookie carries a token whose SHA-256 is `token_hash`."""

    __tablename__ = "sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime | None]
    ip_address: Mapped[str | None] = mapped_column(sa.String(IP_LENGTH))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))

    user: Mapped[User] = relationship(back_populates="sessions")


class Account(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A link between a user and an OAuth provider identity."""

    __tablename__ = "accounts"
    __table_args__ = (sa.UniqueConstraint("provider", "provider_account_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(sa.String(64))
    provider_account_id: Mapped[str] = mapped_column(sa.String(255))
    access_token: Mapped[str | None] = mapped_column(sa.Text)
    refresh_token: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime | None]
    scope: Mapped[str | None] = mapped_column(sa.String(1024))

    user: Mapped[User] = relationship(back_populates="accounts")


class ApiKey(UUIDPrimaryKeyMixin, TimestampMixin, Base):
    """A long-lived API credential; only its hash and a display prefix are kept."""

    __tablename__ = "api_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(255))
    prefix: Mapped[str] = mapped_column(sa.String(32))
    key_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    kind: Mapped[ApiKeyKind] = mapped_column(
        enum_column_type(ApiKeyKind), default=ApiKeyKind.CLIENT
    )
    permissions: Mapped[list[str]] = mapped_column(default=list)
    # Empty means any address may use the key.
    allowed_ips: Mapped[list[str]] = mapped_column(default=list)
    last_used_at: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(sa.String(IP_LENGTH))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="api_keys")


class RecoveryCode(UUIDPrimaryKeyMixin, CreatedAtMixin, Base):
    """A single-use two-factor recovery code."""

    __tablename__ = "recovery_codes"
    __table_args__ = (sa.UniqueConstraint("user_id", "code_hash"),)

    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH))
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="recovery_codes")


class OneTimeToken(UUIDPrimaryKeyMixin, CreatedAtMixin, Base):
    """A single-use emailed token: email verification, password reset or invitation."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (sa.Index(None, "purpose", "user_id"),)

    # None for an invitation to someone who has no account yet.
    user_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[TokenPurpose] = mapped_column(enum_column_type(TokenPurpose))
    token_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    # The address the token was sent to (a new address when verifying an email change).
    email: Mapped[str | None] = mapped_column(sa.String(EMAIL_LENGTH))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User | None] = relationship()
