"""Console tokens: what the panel signs verifies on the daemon, and every forgery is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest

from stellarstack.protocol.tokens import (
    ConsoleClaims,
    TokenError,
    TokenExpiredError,
    TokenPurpose,
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    read_public_key,
    sign,
    verify,
    verify_console,
)

PANEL_KEY = generate_signing_key()
PUBLIC = PANEL_KEY.public_key()


def claims(**overrides: object) -> ConsoleClaims:
    """Console claims for srv-1 on node-1, overridable per test."""
    values: dict[str, object] = {
        "node_id": "node-1",
        "server_id": "srv-1",
        "user_id": "u-1",
        "container_id": "c0ffee",
        "can_write": True,
        "power": ("start",),
        "username": "alice",
        "ip": "203.0.113.9",
    }
    values.update(overrides)
    return ConsoleClaims.issue(**values)  # type: ignore[arg-type]


def check(token: str, *, audience: str = "node-1", server_id: str = "srv-1") -> ConsoleClaims:
    """Verify as the daemon of node-1 does for srv-1."""
    return verify_console(token, PUBLIC, audience=audience, server_id=server_id)


def b64(data: dict[str, object]) -> str:
    """Base64url without padding, as JWT segments are written."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_signed_console_token_carries_the_spec_claims() -> None:
    token = sign(claims(), PANEL_KEY)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == "stellarstack" and payload["aud"] == "node-1"
    assert payload["sub"] == "u-1" and payload["serverId"] == "srv-1"
    assert payload["containerId"] == "c0ffee" and payload["purpose"] == "console"
    assert payload["permissions"] == {"canRead": True, "canWrite": True, "power": ["start"]}
    assert payload["metadata"] == {"username": "alice", "ip": "203.0.113.9"}
    assert payload["exp"] - payload["iat"] == 300 and len(payload["jti"]) == 32
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    verified = check(token)
    assert verified.permissions.can_write and verified.permissions.power == ("start",)
    assert verified.metadata.username == "alice"


def test_each_token_gets_its_own_jti() -> None:
    assert claims().jti != claims().jti


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = sign(claims(), generate_signing_key())
    with pytest.raises(TokenError, match="signature"):
        check(token)


def test_a_token_for_another_node_is_refused() -> None:
    with pytest.raises(TokenError, match="another node"):
        check(sign(claims(node_id="node-2"), PANEL_KEY))


def test_a_token_for_another_server_is_refused() -> None:
    with pytest.raises(TokenError, match="another server"):
        check(sign(claims(server_id="srv-2"), PANEL_KEY))


def test_an_expired_console_token_is_rejected() -> None:
    token = sign(claims(at=time.time() - 400), PANEL_KEY)
    with pytest.raises(TokenExpiredError, match="expired"):
        check(token)


def test_an_unsigned_alg_none_token_is_refused() -> None:
    payload = claims().to_wire()
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
    with pytest.raises(TokenError, match="'none' is refused"):
        check(token)


def test_an_hmac_token_keyed_with_the_public_key_is_refused() -> None:
    secret = public_key_pem(PANEL_KEY)
    header = b64({"alg": "HS256", "typ": "JWT"})
    body = b64(claims().to_wire())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(TokenError, match="HS256"):
        check(token)


def test_a_tampered_payload_is_refused() -> None:
    header, _, signature = sign(claims(can_write=False), PANEL_KEY).split(".")
    forged = claims(can_write=True).to_wire()
    with pytest.raises(TokenError, match="signature"):
        check(f"{header}.{b64(forged)}.{signature}")


def test_a_console_token_is_refused_where_another_purpose_is_needed() -> None:
    token = sign(claims(), PANEL_KEY)
    for purpose in (TokenPurpose.UPLOAD, TokenPurpose.DOWNLOAD, TokenPurpose.SFTP):
        with pytest.raises(TokenError, match=f"not a {purpose.value} token"):
            verify(token, PUBLIC, audience="node-1", purpose=purpose, server_id="srv-1")


def test_a_token_of_another_purpose_is_refused_on_the_console() -> None:
    payload = {**claims().to_wire(), "purpose": "upload"}
    token = jwt.encode(payload, PANEL_KEY, algorithm="EdDSA")
    with pytest.raises(TokenError, match="not a console token"):
        check(token)


@pytest.mark.parametrize("missing", ["exp", "jti", "aud", "iss", "sub", "serverId"])
def test_a_token_missing_a_required_claim_is_refused(missing: str) -> None:
    payload = claims().to_wire()
    del payload[missing]
    with pytest.raises(TokenError):
        check(jwt.encode(payload, PANEL_KEY, algorithm="EdDSA"))


def test_a_token_from_another_issuer_is_refused() -> None:
    payload = {**claims().to_wire(), "iss": "someone-else"}
    with pytest.raises(TokenError, match="invalid"):
        check(jwt.encode(payload, PANEL_KEY, algorithm="EdDSA"))


@pytest.mark.parametrize(
    "garbage", ["", "not-a-jwt", "a.b.c", "x" * 9000, "<script>alert(1)</script>", "..."]
)
def test_garbage_is_refused_with_a_token_error(garbage: str) -> None:
    with pytest.raises(TokenError):
        check(garbage)


def test_keys_round_trip_through_pem_files(tmp_path: Path) -> None:
    private = load_private_key(private_key_pem(PANEL_KEY))
    path = tmp_path / "panel.pub"
    path.write_bytes(public_key_pem(private))
    public = read_public_key(path)
    token = sign(claims(), private)
    assert verify_console(token, public, audience="node-1", server_id="srv-1").sub == "u-1"
    assert load_public_key(public_key_pem(PUBLIC).decode()) is not None


def test_keys_that_are_not_ed25519_or_not_pem_are_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(TokenError, match="Ed25519"):
        load_public_key(ec_pem)
    with pytest.raises(TokenError, match="PEM"):
        load_private_key(b"-----BEGIN NOTHING-----")
    with pytest.raises(TokenError, match="cannot read"):
        read_public_key(tmp_path / "absent.pub")
