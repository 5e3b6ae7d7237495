"""The panel's certificate authority: node certificates that name the node they belong to.

Created on first start in the CA directory (the key with mode 0600) and loaded afterwards;
panel replicas must share that directory. A node certificate carries the node id as its
common name and as the DNS name `node_tls_name(node_id)`, so a client that verifies it with
that server name proves both the CA and the node::

    ca = NodeCA.load_or_create(settings_ca_dir)
    issued = ca.issue(node_id, public_key_pem, hostname="10.0.0.5", days=825)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stellarstack.logs import get_logger
from stellarstack.protocol import keys

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "InvalidPublicKey",
    "IssuedCertificate",
    "NodeCA",
    "directory_lock",
    "node_tls_name",
    "write_private",
]

log = get_logger(__name__)

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CA_VALIDITY = timedelta(days=3650)
NODE_TLS_DOMAIN = "node.stellarstack.internal"
MIN_RSA_BITS = 2048


class InvalidPublicKey(ValueError):
    """A node sent a public key the CA will not certify; the message says why."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A node certificate (PEM) and what the panel keeps about it."""

    pem: str
    serial: str
    fingerprint: str
    expires_at: datetime


def node_tls_name(node_id: str) -> str:
    """The DNS name in a node's certificate that identifies the node (its TLS server name)."""
    return f"{keys.check_identifier(node_id, kind='node id').lower()}.{NODE_TLS_DOMAIN}"


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (so two panels never create two CAs at once)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load_node_key(public_key_pem: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
    except (ValueError, TypeError) as exc:
        raise InvalidPublicKey("publicKey is not a PEM-encoded public key.") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in {"secp256r1", "secp384r1"}:
            raise InvalidPublicKey("publicKey must be an EC P-256/P-384 or RSA ≥ 2048 key.")
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    raise InvalidPublicKey("publicKey must be an EC P-256/P-384 or RSA ≥ 2048 key.")


def _address_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname.lower())


class NodeCA:
    """The CA key and certificate; signs node certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @property
    def certificate_pem(self) -> str:
        """The CA certificate, PEM (what nodes and the panel's client trust)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def load_or_create(cls, directory: Path) -> NodeCA:
        """Load the CA from `directory`, creating it (key 0600) on first use."""
        with directory_lock(directory):
            return cls._load_or_create(directory)

    @classmethod
    def _load_or_create(cls, directory: Path) -> NodeCA:
        key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not an EC private key")
            return cls(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))
        ca = cls.generate()
        write_private(
            key_path,
            ca._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_text(ca.certificate_pem)
        log.info("nodes.ca_created", directory=str(directory), serial=ca.certificate.serial_number)
        return ca

    @classmethod
    def generate(cls, common_name: str = "StellarStack node CA") -> NodeCA:
        """A new CA in memory (P-256, ten years)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "StellarStack"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def issue(
        self, node_id: str | uuid.UUID, public_key_pem: str, *, hostname: str, days: int
    ) -> IssuedCertificate:
        """Sign a server + client certificate for a node's own key (it never leaves the node)."""
        node = str(node_id)
        public_key = _load_node_key(public_key_pem)
        names: list[x509.GeneralName] = [x509.DNSName(node_tls_name(node))]
        address = _address_name(hostname)
        if address not in names:
            names.append(address)
        now = datetime.now(UTC)
        expires = now + timedelta(days=days)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(expires)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        return IssuedCertificate(
            pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            serial=format(certificate.serial_number, "x"),
            fingerprint=hashlib.sha256(der).hexdigest(),
            expires_at=expires,
        )
