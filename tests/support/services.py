"""Start the real components tests need: PostgreSQL, Redis, the Docker Engine, chromium.

Each launcher returns None (with a reason) when the component is missing on this machine;
`require()` turns that into a skip on a laptop and a failure in CI (`CI=true`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "TEST_IMAGE",
    "DockerEngine",
    "PostgresServer",
    "RedisServer",
    "free_port",
    "in_ci",
    "require",
    "start_docker",
    "start_postgres",
    "start_redis",
]

TEST_IMAGE = "stellarstack-test/busybox:latest"


def in_ci() -> bool:
    """True when running under CI, where a missing component is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) the current test when a component is unavailable."""
    if available:
        return
    if in_ci():
        pytest.fail(f"required component unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a child process, killing it if it does not stop in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port."""

    port: int
    datadir: Path
    proc: subprocess.Popen[bytes]
    bindir: Path
    user: str = "postgres"
    _counter: int = field(default=0)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL for a database of this cluster."""
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a new empty database and return its name."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-q",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return name

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        stop_process(self.proc)
        shutil.rmtree(self.datadir, ignore_errors=True)


def _postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def start_postgres() -> tuple[PostgresServer | None, str]:
    """Start PostgreSQL with initdb/postgres as the `postgres` user (pg refuses root)."""
    bindir = _postgres_bindir()
    if bindir is None:
        return None, "PostgreSQL is not installed (Debian package `postgresql`)"
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            return None, "running as root and there is no `postgres` user to run PostgreSQL"
        run_as = ["runuser", "-u", "postgres", "--"]
    datadir = Path(tempfile.mkdtemp(prefix="stellar-pg-"))
    if owner is not None:
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
    init = subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
    )
    if init.returncode != 0:
        shutil.rmtree(datadir, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.decode(errors='replace')[-400:]}"
    port = free_port()
    proc = subprocess.Popen(
        [
            *run_as,
            str(bindir / "postgres"),
            "-D",
            str(datadir),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={datadir}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = PostgresServer(port=port, datadir=datadir, proc=proc, bindir=bindir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        )
        if ready.returncode == 0:
            return server, ""
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    server.stop()
    return None, "PostgreSQL did not become ready within 30 s"


# --------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    extra_args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """redis:// URL of the default database."""
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self) -> None:
        """Stop and start the same server (same port, same data directory)."""
        stop_process(self.proc)
        self.proc = _spawn_redis(self.port, self.workdir, self.extra_args)
        if not wait_for_port(self.port, 10, self.proc):
            raise RuntimeError("redis-server did not come back after restart")

    def stop(self) -> None:
        """Stop the server and remove its files."""
        stop_process(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn_redis(port: int, workdir: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "redis-server"
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_redis(extra_args: list[str] | None = None) -> tuple[RedisServer | None, str]:
    """Start redis-server on a free port in a temporary directory."""
    if shutil.which("redis-server") is None:
        return None, "redis-server is not installed (Debian package `redis-server`)"
    workdir = Path(tempfile.mkdtemp(prefix="stellar-redis-"))
    port = free_port()
    args = list(extra_args or [])
    proc = _spawn_redis(port, workdir, args)
    if not wait_for_port(port, 15, proc):
        stop_process(proc)
        shutil.rmtree(workdir, ignore_errors=True)
        return None, "redis-server did not start"
    return RedisServer(port=port, workdir=workdir, proc=proc, extra_args=args), ""


# --------------------------------------------------------------------------- Docker


@dataclass
class DockerEngine:
    """A reachable Docker Engine (started here if none answered) and the local test image."""

    host: str
    image: str
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop dockerd if this session started it."""
        if self.proc is not None:
            stop_process(self.proc, timeout=20)


def _docker_answers(sock: str) -> bool:
    if not Path(sock).exists():
        return False
    docker = shutil.which("docker")
    if docker is None:
        return False
    res = subprocess.run(
        [docker, "-H", f"unix://{sock}", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        timeout=20,
    )
    return res.returncode == 0


def build_busybox_image(
    host: str, tag: str, *, files: dict[str, str] | None = None, tail: str = 'CMD ["/bin/sh"]\n'
) -> str | None:
    """Build `tag` FROM scratch out of Debian's busybox-static, plus `files` (name → text) and
    the Dockerfile lines `tail`; None on success, else why not."""
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).exists()), None)
    if busybox is None:
        return "busybox-static is not installed (Debian package `busybox-static`)"
    check = subprocess.run(["file", "-L", busybox], capture_output=True, text=True)
    if check.returncode == 0 and "dynamically linked" in check.stdout:
        return f"{busybox} is dynamically linked: install Debian's `busybox-static`"
    with tempfile.TemporaryDirectory(prefix="stellar-img-") as ctx:
        shutil.copy2(busybox, Path(ctx) / "busybox")
        for name, text in (files or {}).items():
            (Path(ctx) / name).write_text(text)
            (Path(ctx) / name).chmod(0o755)
        (Path(ctx) / "Dockerfile").write_text(
            "FROM scratch\n"
            "COPY busybox /bin/busybox\n"
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            "RUN mkdir -p /tmp /home/container && chmod 1777 /tmp /home/container\n" + tail
        )
        res = subprocess.run(
            ["docker", "-H", host, "build", "-q", "-t", tag, ctx],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if res.returncode != 0:
        return f"building the test image {tag} failed: {res.stderr[-400:]}"
    return None


def build_test_image(host: str) -> str | None:
    """Build `stellarstack-test/busybox` FROM scratch out of Debian's busybox-static."""
    return build_busybox_image(host, TEST_IMAGE)


def start_docker() -> tuple[DockerEngine | None, str]:
    """Find a Docker Engine, start dockerd when none answers, and build the test image."""
    sock = "/var/run/docker.sock"
    if shutil.which("docker") is None:
        return None, "the docker client is not installed (Debian package `docker.io`)"
    proc = None
    if not _docker_answers(sock):
        dockerd = shutil.which("dockerd")
        if dockerd is None or os.geteuid() != 0:
            return None, "no Docker Engine answers and dockerd cannot be started here"
        log = open(Path(tempfile.gettempdir()) / "stellar-dockerd.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([dockerd, "--host", f"unix://{sock}"], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _docker_answers(sock):
            if proc.poll() is not None:
                return None, "dockerd exited at start (see stellar-dockerd.log in the temp dir)"
            time.sleep(0.5)
        if not _docker_answers(sock):
            stop_process(proc)
            return None, "dockerd did not answer within 60 s"
    host = f"unix://{sock}"
    error = build_test_image(host)
    if error:
        if proc is not None:
            stop_process(proc)
        return None, error
    return DockerEngine(host=host, image=TEST_IMAGE, proc=proc), ""


# --------------------------------------------------------------------------- chromium

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """Debian's chromium binary, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration of a block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old
