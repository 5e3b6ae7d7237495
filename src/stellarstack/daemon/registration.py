"""`stellarstack daemon register`: admit this machine to a panel with a one-time token.

Detects the machine's specs, makes a key pair (the private key never leaves the node), calls
`POST /api/v1/nodes/register`, and writes what the panel returns beside the config file::

    daemon.toml   node_id, api_token, panel_url, redis_url, TLS and key paths   (0600)
    node.key      this node's private key                                      (0600)
    node.crt      its certificate, signed by the panel's CA
    ca.crt        the panel's CA (to verify the panel and other nodes)
    panel.pub     the panel's Ed25519 public key (console tokens)
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stellarstack import __version__
from stellarstack.logs import get_logger

__all__ = [
    "NodeSpecs",
    "Registration",
    "RegistrationError",
    "detect_specs",
    "local_address_towards",
    "register_node",
    "write_config",
]

log = get_logger(__name__)

MIB = 1024 * 1024


class RegistrationError(Exception):
    """Registration did not happen; the message says what to do."""


@dataclass(frozen=True, slots=True)
class NodeSpecs:
    """CPU cores, memory and disk (MiB) of this machine."""

    cpu: int
    memory: int
    disk: int


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome: the node id and the files written."""

    node_id: str
    config_file: Path
    redis_url: str | None


def detect_specs(data_dir: Path) -> NodeSpecs:
    """Cores, total memory, and the size of the disk that holds `data_dir`."""
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return NodeSpecs(
        cpu=psutil.cpu_count() or 1,
        memory=psutil.virtual_memory().total // MIB,
        disk=psutil.disk_usage(str(probe)).total // MIB,
    )


def local_address_towards(url: str) -> str:
    """This machine's address on the route to `url` (what the panel will reach it at)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))  # UDP "connect" sends nothing; it only picks a route
            return str(probe.getsockname()[0])
    except OSError:
        return socket.getfqdn()


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: Path, values: dict[str, object]) -> None:
    """Write a flat TOML file readable by its owner only (0600)."""
    lines = ["# Written by `stellarstack daemon register`; keep it secret (it holds the token)."]
    lines += [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None]
    _write_private(path, ("\n".join(lines) + "\n").encode())


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _problem(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        detail = str(error.get("detail") or "")
        fields = "; ".join(f"{e['field']}: {e['message']}" for e in error.get("errors") or [])
    except (ValueError, AttributeError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase
    return f"{detail} ({fields})" if fields else detail


def _check_panel_url(panel_url: str) -> str:
    parts = urlsplit(panel_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise RegistrationError(f"--panel must be an http(s) URL, not {panel_url!r}")
    return panel_url.rstrip("/")


async def register_node(
    panel_url: str,
    token: str,
    *,
    config_file: Path,
    data_dir: Path,
    hostname: str | None = None,
    port: int = 5000,
    listen_host: str = "0.0.0.0",
    force: bool = False,
    http_timeout: float = 30.0,
) -> Registration:
    """Register with the panel and write the config, key and certificates (see module doc)."""
    panel = _check_panel_url(panel_url)
    _check_destination(config_file, force=force)
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    specs = detect_specs(data_dir)
    body = {
        "publicKey": public_pem.decode(),
        "hostname": hostname or local_address_towards(panel),
        "port": port,
        "scheme": "https",
        "specs": {"cpu": specs.cpu, "memory": specs.memory, "disk": specs.disk},
        "version": __version__,
    }
    data = await _post_registration(panel, token, body, http_timeout)
    _write_files(config_file, data_dir, key, data, panel=panel, port=port, listen_host=listen_host)
    log.info("daemon.registered", node_id=data["nodeId"], config=str(config_file))
    return Registration(str(data["nodeId"]), config_file, data.get("redisUrl"))


def _check_destination(config_file: Path, *, force: bool) -> None:
    if config_file.exists() and not force:
        raise RegistrationError(
            f"{config_file} exists: this machine looks registered already "
            "(pass --force to register again and replace it)"
        )


def _write_files(
    config_file: Path,
    data_dir: Path,
    key: ec.EllipticCurvePrivateKey,
    data: dict[str, Any],
    *,
    panel: str,
    port: int,
    listen_host: str,
) -> None:
    directory = config_file.parent
    files = {
        "tls_key_file": directory / "node.key",
        "tls_cert_file": directory / "node.crt",
        "ca_file": directory / "ca.crt",
        "panel_public_key_file": directory / "panel.pub",
    }
    _write_private(
        files["tls_key_file"],
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    files["tls_cert_file"].write_text(str(data["certificate"]))
    files["ca_file"].write_text(str(data["caCertificate"]))
    files["panel_public_key_file"].write_text(str(data["panelPublicKey"]))
    data_dir.mkdir(parents=True, exist_ok=True)
    write_config(
        config_file,
        {
            "node_id": data["nodeId"],
            "api_token": data["apiToken"],
            "panel_url": data.get("panelUrl") or panel,
            "redis_url": data.get("redisUrl"),
            "host": listen_host,
            "port": port,
            "data_dir": data_dir,
            **{name: str(path) for name, path in files.items()},
        },
    )


async def _post_registration(
    panel: str, token: str, body: dict[str, Any], http_timeout: float
) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=http_timeout, follow_redirects=False) as client:
            response = await client.post(
                f"{panel}/api/v1/nodes/register",
                json=body,
                headers={"X-Registration-Token": token.strip()},
            )
    except httpx.HTTPError as exc:
        raise RegistrationError(f"cannot reach the panel at {panel}: {exc}") from exc
    if response.status_code != 201:
        raise RegistrationError(
            f"the panel refused the registration ({response.status_code}): {_problem(response)}"
        )
    try:
        data: dict[str, Any] = response.json()["data"]
        for name in ("nodeId", "apiToken", "certificate", "caCertificate", "panelPublicKey"):
            if not isinstance(data.get(name), str):
                raise KeyError(name)
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistrationError(f"the panel's answer is not a registration: {exc}") from exc
    return data
