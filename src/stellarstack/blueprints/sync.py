"""Fetching blueprints from elsewhere: one document by URL, or a git repository.

A sync makes the panel open connections an admin chose, so it must not become a way to reach
the panel's own network (DESIGN.md §6): only `https` (plain `http` by setting), the address is
checked **at connect time** (`PublicOnlyBackend` resolves the name itself and refuses loopback,
private, link-local, shared, multicast and reserved addresses, IPv4-mapped ones included, then
connects to the address it checked — a DNS answer cannot change in between), every redirect
hop goes through the same check, proxies from the environment are ignored, and the body is
capped. Git repositories are cloned shallowly over https only, with redirects off; their host
is checked before the clone (git resolves it again itself, which a hostile DNS server could
answer differently — the https-only rule keeps what it can reach to web servers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from stellarstack.blueprints.errors import SyncRefused
from stellarstack.blueprints.loader import LoadResult, load_directory
from stellarstack.logs import get_logger

__all__ = [
    "FetchedDocument",
    "PublicOnlyBackend",
    "SyncOptions",
    "check_address",
    "clone_and_load",
    "fetch_document",
]

log = get_logger(__name__)

MAX_REDIRECTS = 3
GIT_TIMEOUT = 120.0
MAX_REPOSITORY_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Limits of a sync (from the panel settings)."""

    max_bytes: int = 1024 * 1024
    timeout: float = 30.0
    allow_http: bool = False
    # For tests that serve blueprints from 127.0.0.1 only; never in production.
    allow_private: bool = False


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A fetched document and the URL it finally came from."""

    text: str
    url: str


def check_address(address: str, *, allow_private: bool = False) -> None:
    """Refuse an address that is not on the public internet (unless tests allow it)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise SyncRefused(f"{address} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        raise SyncRefused(
            f"{address} is a loopback, private, link-local or reserved address; "
            "blueprints are only fetched from public hosts"
        )


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SyncRefused(f"{host} cannot be resolved: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses that pass `check_address`."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve, check every address, then connect to the first checked one."""
        addresses = await _resolve(host, port)
        for address in addresses:
            check_address(address, allow_private=self._allow_private)
        # TLS (SNI and certificate checks) still uses the name: httpcore passes it to start_tls.
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep (part of the backend interface)."""
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False, retries=0)
        # httpx has no parameter for the network backend; its pool is replaced with one that
        # has ours (same defaults otherwise).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=PublicOnlyBackend(allow_private=allow_private),
            max_connections=4,
        )


def _check_url(url: str, options: SyncOptions) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SyncRefused(f"{url!r} is not a URL") from None
    allowed = {"https", "http"} if options.allow_http else {"https"}
    if parts.scheme not in allowed:
        raise SyncRefused(f"only {' or '.join(sorted(allowed))} URLs can be synced, not {url!r}")
    if not parts.hostname or parts.username or parts.password:
        raise SyncRefused("the URL needs a host and must not carry credentials")
    return url


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise SyncRefused(f"the document is larger than {max_bytes // 1024} KiB")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise SyncRefused(f"the document is larger than {max_bytes // 1024} KiB")
    return bytes(body)


async def fetch_document(url: str, options: SyncOptions) -> FetchedDocument:
    """GET one document (a blueprint or an egg), following at most three checked redirects."""
    transport = _GuardedTransport(allow_private=options.allow_private)
    async with httpx.AsyncClient(
        transport=transport, timeout=options.timeout, follow_redirects=False, trust_env=False
    ) as client:
        current = _check_url(url, options)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", current) as response:
                    if response.is_redirect:
                        target = response.headers.get("location", "")
                        current = _check_url(str(response.url.join(target)), options)
                        continue
                    if response.status_code != 200:
                        raise SyncRefused(f"{current} answered HTTP {response.status_code}")
                    body = await _read_capped(response, options.max_bytes)
            except httpx.HTTPError as exc:
                raise SyncRefused(f"{current} could not be fetched: {exc}") from None
            try:
                return FetchedDocument(body.decode("utf-8"), current)
            except UnicodeDecodeError:
                raise SyncRefused(f"{current} is not UTF-8 text") from None
    raise SyncRefused(f"{url} redirects more than {MAX_REDIRECTS} times")


def _directory_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


async def clone_and_load(url: str, options: SyncOptions, *, ref: str | None = None) -> LoadResult:
    """`git clone --depth 1` a repository over https into a temp dir and load its blueprints."""
    _check_url(url, options)
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or 443
    for address in await _resolve(host, port):
        check_address(address, allow_private=options.allow_private)
    if ref is not None and (ref.startswith("-") or not ref.strip() or len(ref) > 255):
        raise SyncRefused("the branch or tag name is not valid")
    git = shutil.which("git")
    if git is None:
        raise SyncRefused("git is not installed on the panel host")
    workdir = Path(tempfile.mkdtemp(prefix="stellar-sync-"))
    try:
        await _clone(git, url, ref, workdir / "repo", options)
        if _directory_size(workdir / "repo") > MAX_REPOSITORY_BYTES:
            raise SyncRefused(f"the repository is larger than {MAX_REPOSITORY_BYTES >> 20} MiB")
        return load_directory(workdir / "repo", source_kind="git")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _clone(git: str, url: str, ref: str | None, target: Path, options: SyncOptions) -> None:
    protocols = "https" if not options.allow_http else "https:http"
    args = [
        git,
        "-c",
        "protocol.allow=never",
        *[arg for p in protocols.split(":") for arg in ("-c", f"protocol.{p}.allow=always")],
        "-c",
        "http.followRedirects=false",
        "-c",
        "core.symlinks=false",
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        *(["--branch", ref] if ref else []),
        "--",
        url,
        str(target),
    ]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(target.parent),
    }
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SyncRefused(f"git clone took longer than {GIT_TIMEOUT:g} s") from None
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["failed"]
        log.warning("blueprints.git_clone_failed", url=url, error=message[0])
        raise SyncRefused(f"git clone failed: {message[0][:300]}")
