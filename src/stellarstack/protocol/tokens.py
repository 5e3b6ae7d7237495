"""Signed access tokens the panel hands to browsers and the daemon checks (spec §6.2).

A token is a JWT signed with the panel's Ed25519 key (`alg: EdDSA`); daemons hold only the
public half. Each token names one `purpose` (console, upload, download, SFTP) and one node
(`aud`), so a token minted for one door opens no other. Usage::

    key = generate_signing_key()                       # the panel does this once (PEM on disk)
    claims = ConsoleClaims.issue(
        node_id="node-1", server_id="srv-1", container_id="c0ffee", user_id="u-1",
        can_read=True, can_write=False, username="alice", ip="203.0.113.9",
    )
    token = sign(claims, key)
    ...
    claims = verify_console(token, public_key, audience="node-1", server_id="srv-1")
    # on the daemon; raises TokenError (`verify(…, purpose=…)` for the other purposes)

Errors::

    TokenError                 the token cannot be trusted; `str()` says why
    └── TokenExpiredError      it was good once (signature fine) but its `exp` has passed
"""

from __future__ import annotations

import enum
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError

from stellarstack.protocol.errors import ProtocolError
from stellarstack.protocol.wire import WireModel

__all__ = [
    "ALGORITHM",
    "CONSOLE_TOKEN_TTL",
    "ISSUER",
    "ConsoleClaims",
    "ConsoleMetadata",
    "ConsolePermissions",
    "PowerAction",
    "TokenClaims",
    "TokenError",
    "TokenExpiredError",
    "TokenPurpose",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_pem",
    "read_public_key",
    "sign",
    "verify",
    "verify_console",
]

ALGORITHM = "EdDSA"
"""The only signature algorithm accepted (never `none`, never HMAC)."""

ISSUER = "stellarstack"
"""The `iss` of every token the panel signs."""

CONSOLE_TOKEN_TTL = 300
"""Seconds a console token lives (spec §6.1: five minutes)."""

MAX_TOKEN_BYTES = 8192
"""Longer strings are refused before any parsing (bounds work on hostile input)."""

LEEWAY_SECONDS = 5
"""Clock skew tolerated between panel and daemon on `exp` and `iat`."""

PowerAction = Literal["start", "stop", "restart", "kill"]


class TokenError(ProtocolError):
    """A token that must not be trusted (bad signature, wrong node, server or purpose…)."""


class TokenExpiredError(TokenError):
    """A correctly signed token whose `exp` has passed."""


class TokenPurpose(enum.StrEnum):
    """What a token may be used for; each door checks for its own purpose."""

    CONSOLE = "console"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    SFTP = "sftp"


class TokenClaims(WireModel):
    """Claims every signed token carries: who, for which node and server, until when."""

    purpose_name: ClassVar[TokenPurpose]

    iss: str = ISSUER
    sub: str = Field(min_length=1, max_length=128, description="User id.")
    aud: str = Field(min_length=1, max_length=128, description="Node id.")
    exp: int
    iat: int
    jti: str = Field(min_length=1, max_length=128)
    purpose: TokenPurpose
    server_id: str = Field(min_length=1, max_length=128)


class ConsolePermissions(WireModel):
    """What the holder may do on the console: watch, type commands, power actions."""

    can_read: bool = True
    can_write: bool = False
    power: tuple[PowerAction, ...] = ()
    """Power actions allowed over the socket (`server.power.<action>` on the panel)."""


class ConsoleMetadata(WireModel):
    """Who asked for the token, for the daemon's audit events."""

    username: str = Field(default="", max_length=255)
    ip: str = Field(default="", max_length=64)


class ConsoleClaims(TokenClaims):
    """A console token (spec §6.2): the server's container and the holder's permissions."""

    purpose_name: ClassVar[TokenPurpose] = TokenPurpose.CONSOLE

    purpose: Literal[TokenPurpose.CONSOLE] = TokenPurpose.CONSOLE
    container_id: str = Field(default="", max_length=128)
    permissions: ConsolePermissions = Field(default_factory=ConsolePermissions)
    metadata: ConsoleMetadata = Field(default_factory=ConsoleMetadata)

    @classmethod
    def issue(
        cls,
        *,
        node_id: str,
        server_id: str,
        user_id: str,
        container_id: str = "",
        can_read: bool = True,
        can_write: bool = False,
        power: tuple[PowerAction, ...] = (),
        username: str = "",
        ip: str = "",
        ttl: int = CONSOLE_TOKEN_TTL,
        at: float | None = None,
    ) -> Self:
        """Fresh claims (new `jti`, `iat` now, `exp` after `ttl` seconds)."""
        issued = int(time.time() if at is None else at)
        return cls(
            sub=user_id,
            aud=node_id,
            iat=issued,
            exp=issued + ttl,
            jti=uuid.uuid4().hex,
            server_id=server_id,
            container_id=container_id,
            permissions=ConsolePermissions(can_read=can_read, can_write=can_write, power=power),
            metadata=ConsoleMetadata(username=username, ip=ip),
        )


_CLAIMS: dict[TokenPurpose, type[TokenClaims]] = {TokenPurpose.CONSOLE: ConsoleClaims}


def sign(claims: TokenClaims, private_key: Ed25519PrivateKey) -> str:
    """The compact JWT of `claims`, signed with the panel's Ed25519 key."""
    return jwt.encode(claims.to_wire(), private_key, algorithm=ALGORITHM, headers={"typ": "JWT"})


def verify(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    audience: str,
    purpose: TokenPurpose,
    server_id: str,
) -> TokenClaims:
    """Check signature, issuer, node, expiry, purpose and server; return the typed claims.

    The result is an instance of the purpose's claims model (ConsoleClaims for CONSOLE).
    Raises TokenExpiredError or TokenError with a reason a person can act on.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise TokenError("the token is missing or too long")
    payload = _decode(token, public_key, audience)
    if payload.get("purpose") != purpose.value:
        raise TokenError(f"this token is not a {purpose.value} token")
    model = _CLAIMS.get(purpose)
    if model is None:
        raise TokenError(f"{purpose.value} tokens are not supported by this version")
    try:
        claims = model.model_validate(payload)
    except ValidationError as exc:
        raise TokenError(f"the token's claims are malformed ({exc.error_count()} errors)") from exc
    if claims.server_id != server_id:
        raise TokenError("this token was issued for another server")
    return claims


def verify_console(
    token: str, public_key: Ed25519PublicKey, *, audience: str, server_id: str
) -> ConsoleClaims:
    """`verify` for the console: the claims of a console token for `server_id` on this node."""
    claims = verify(
        token, public_key, audience=audience, purpose=TokenPurpose.CONSOLE, server_id=server_id
    )
    if not isinstance(claims, ConsoleClaims):  # pragma: no cover - _CLAIMS maps CONSOLE to it
        raise TokenError("this token is not a console token")
    return claims


def _decode(token: str, public_key: Ed25519PublicKey, audience: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenError("the token is not a JWT") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenError(f"token algorithm {header.get('alg')!r} is refused; only EdDSA is valid")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "aud", "iss", "jti", "sub"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpiredError("the token has expired; ask the panel for a new one") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError("this token was issued for another node") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("the token's signature does not match this panel's key") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"the token is invalid: {exc}") from exc
    return payload


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key for signing tokens."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM (store it with mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (what daemons hold)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes | str) -> Ed25519PrivateKey:
    """Parse a PKCS#8 PEM private key; TokenError unless it is Ed25519."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TokenError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError("the signing key must be Ed25519")
    return key


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM public key; TokenError unless it is Ed25519."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise TokenError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise TokenError("the panel's public key must be Ed25519")
    return key


def read_public_key(path: Path) -> Ed25519PublicKey:
    """Load the panel's public key from a PEM file (the daemon's `panel_public_key_file`)."""
    try:
        return load_public_key(path.read_bytes())
    except OSError as exc:
        raise TokenError(f"cannot read the panel's public key at {path}: {exc}") from exc
