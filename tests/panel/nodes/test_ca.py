"""The node CA and the panel signing key: created once (0600), reloaded, and strict on keys."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from stellarstack.panel.domain.nodes.ca import InvalidPublicKey, NodeCA, node_tls_name
from stellarstack.panel.domain.nodes.signing_key import PanelSigningKey


def public_pem(key: object) -> str:
    return (
        key.public_key()
        .public_bytes(  # type: ignore[attr-defined,no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )


def test_the_ca_is_created_once_with_a_private_key_and_then_reloaded(tmp_path: Path) -> None:
    first = NodeCA.load_or_create(tmp_path / "ca")
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    again = NodeCA.load_or_create(tmp_path / "ca")
    assert again.certificate == first.certificate
    assert again.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_node_certificate_names_the_node_and_its_address(tmp_path: Path) -> None:
    ca = NodeCA.load_or_create(tmp_path)
    node_id = uuid.uuid4()
    issued = ca.issue(node_id, public_pem(ec.generate_private_key(ec.SECP256R1())),
                      hostname="192.0.2.7", days=30)  # fmt: skip
    certificate = x509.load_pem_x509_certificate(issued.pem.encode())
    certificate.verify_directly_issued_by(ca.certificate)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [node_tls_name(str(node_id))]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    assert certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == str(
        node_id
    )
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert issued.serial == format(certificate.serial_number, "x")


@pytest.mark.parametrize(
    "key",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        public_pem(ed25519.Ed25519PrivateKey.generate()),
        public_pem(ec.generate_private_key(ec.SECP521R1())),
        public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    ],
    ids=["garbage", "bad-pem", "ed25519", "p521", "rsa-1024"],
)
def test_keys_the_ca_will_not_certify_are_refused(tmp_path: Path, key: str) -> None:
    ca = NodeCA.generate()
    with pytest.raises(InvalidPublicKey):
        ca.issue(uuid.uuid4(), key, hostname="node.example", days=1)


def test_node_ids_that_could_widen_a_name_are_refused() -> None:
    for hostile in ["*", "a.b*", "evil.node.stellarstack.internal x", "", "a:b"]:
        with pytest.raises(ValueError):
            node_tls_name(hostile)


def test_the_signing_key_is_ed25519_created_once_0600(tmp_path: Path) -> None:
    key = PanelSigningKey.load_or_create(tmp_path)
    path = next(tmp_path.glob("*.key"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert isinstance(key.private_key, ed25519.Ed25519PrivateKey)
    assert PanelSigningKey.load_or_create(tmp_path).public_key_pem == key.public_key_pem
    loaded = serialization.load_pem_public_key(key.public_key_pem.encode())
    assert isinstance(loaded, ed25519.Ed25519PublicKey)
