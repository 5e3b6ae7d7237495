"""Sync: fetching from loopback/private addresses is refused at connect time; git and URLs load.

The tests serve blueprints from a real HTTP server on 127.0.0.1 and prove it is refused; the
success paths allow it only through `allow_private`, the test-only switch.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stellarstack.blueprints.errors import SyncRefused
from stellarstack.blueprints.loader import CATALOG_DIR
from stellarstack.blueprints.sync import (
    SyncOptions,
    check_address,
    clone_and_load,
    fetch_document,
)
from tests.blueprints.conftest import EGGS_DIR

OPEN = SyncOptions(allow_http=True, allow_private=True, timeout=10)
HTTP_ONLY = SyncOptions(allow_http=True, timeout=10)


class _Handler(SimpleHTTPRequestHandler):
    def _git(self) -> None:
        """Serve the repository with git's own smart-HTTP CGI (shallow clones need it)."""
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "GIT_PROJECT_ROOT": self.directory,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "PATH": "/usr/bin:/bin",
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = out.stdout.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self._git()

    def do_GET(self) -> None:
        if self.path.startswith("/repo.git/"):
            self._git()
            return
        if self.path.startswith("/redirect-to-file"):
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
            return
        if self.path.startswith("/redirect-loop"):
            self.send_response(302)
            self.send_header("Location", "/redirect-loop")
            self.end_headers()
            return
        if self.path.startswith("/huge"):
            body = b"x" * (2 * 1024 * 1024)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving an egg, a blueprint and a git repository (dumb HTTP)."""
    root = tmp_path_factory.mktemp("served")
    shutil.copy(EGGS_DIR / "pterodactyl-redbot.json", root / "redbot.json")
    shutil.copy(CATALOG_DIR / "luanti.yaml", root / "luanti.yaml")
    work = tmp_path_factory.mktemp("repo")
    shutil.copy(CATALOG_DIR / "mumble.yaml", work / "mumble.yaml")
    shutil.copy(EGGS_DIR / "pelican-factorio.yaml", work / "factorio-egg.yaml")
    (work / "broken.yaml").write_text("slug: [\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "blueprints"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)

    def handler(*args: object, **kwargs: object) -> _Handler:
        return _Handler(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(SyncRefused, match="only fetched from public hosts"):
        check_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    check_address(address)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]"]
)
async def test_fetch_from_loopback_is_refused_at_connect_time(served: str, host: str) -> None:
    port = served.rsplit(":", 1)[1]
    with pytest.raises(SyncRefused, match=r"public hosts|cannot be resolved"):
        await fetch_document(f"http://{host}:{port}/redbot.json", HTTP_ONLY)


async def test_fetch_works_when_tests_allow_private_addresses(served: str) -> None:
    document = await fetch_document(f"{served}/redbot.json", OPEN)
    assert '"PTDL_v2"' in document.text


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "gopher://x",
    ],
)
async def test_only_https_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(SyncRefused):
        await fetch_document(url, SyncOptions())


async def test_redirect_to_another_scheme_is_refused(served: str) -> None:
    with pytest.raises(SyncRefused, match="not 'file:"):
        await fetch_document(f"{served}/redirect-to-file", OPEN)


async def test_redirect_loops_stop(served: str) -> None:
    with pytest.raises(SyncRefused, match="redirects more than"):
        await fetch_document(f"{served}/redirect-loop", OPEN)


async def test_oversized_documents_are_refused(served: str) -> None:
    with pytest.raises(SyncRefused, match="larger than 1024 KiB"):
        await fetch_document(f"{served}/huge", OPEN)


async def test_missing_documents_report_the_status(served: str) -> None:
    with pytest.raises(SyncRefused, match="HTTP 404"):
        await fetch_document(f"{served}/nothing.yaml", OPEN)


async def test_git_clone_loads_blueprints_and_eggs_and_lists_broken_files(served: str) -> None:
    result = await clone_and_load(f"{served}/repo.git", OPEN)
    slugs = sorted(loaded.blueprint.slug for loaded in result.loaded)
    assert slugs == ["factorio", "mumble"]
    egg = next(loaded for loaded in result.loaded if loaded.blueprint.slug == "factorio")
    assert egg.report is not None and egg.report.format == "PLCN_v3"
    assert [p.origin for p in result.problems] == ["broken.yaml"]


async def test_git_clone_from_loopback_is_refused(served: str) -> None:
    with pytest.raises(SyncRefused, match="public hosts"):
        await clone_and_load(f"{served}/repo.git", HTTP_ONLY)


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/pwned", "-b", " "])
async def test_git_refs_that_look_like_options_are_refused(served: str, ref: str) -> None:
    with pytest.raises(SyncRefused, match="branch or tag"):
        await clone_and_load(f"{served}/repo.git", OPEN, ref=ref)


async def test_git_failure_is_a_clear_refusal(served: str) -> None:
    with pytest.raises(SyncRefused, match="git clone failed"):
        await clone_and_load(f"{served}/missing.git", OPEN)
