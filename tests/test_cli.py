"""The `stellarstack` command: help, version, the embedded default, clear startup failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stellarstack import __version__
from tests.support.panel import start_embedded_panel
from tests.support.services import RedisServer, free_port


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m stellarstack ARGS` and capture its output."""
    child_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stellarstack", *args],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
    )


def test_version_and_help_read_well() -> None:
    assert run_cli("--version").stdout.strip() == f"stellarstack {__version__}"
    help_text = run_cli("--help").stdout
    for command in ("up", "panel", "daemon", "migrate", "user"):
        assert command in help_text
    assert "create" in run_cli("user", "--help").stdout


def test_panel_with_a_broken_database_url_exits_with_one_sentence(tmp_path: Path) -> None:
    result = run_cli(
        "panel", env={"STELLAR_DATA_DIR": str(tmp_path), "DATABASE_URL": "nonsense://x"}
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: DATABASE_URL is not a usable database URL")
    assert "Traceback" not in result.stderr


def test_panel_with_an_unreachable_database_exits_with_one_sentence(tmp_path: Path) -> None:
    url = f"postgresql://stellar:secret-pw@127.0.0.1:{free_port()}/stellar"
    result = run_cli("panel", env={"STELLAR_DATA_DIR": str(tmp_path), "DATABASE_URL": url})
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Cannot connect to the database at postgresql")
    assert "secret-pw" not in result.stderr


def test_panel_with_unreachable_redis_exits_with_one_sentence(tmp_path: Path) -> None:
    env = {"STELLAR_DATA_DIR": str(tmp_path), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    assert run_cli("migrate", env={"STELLAR_DATA_DIR": str(tmp_path)}).returncode == 0
    result = run_cli("panel", env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Cannot connect to Redis at redis://127.0.0.1")


def test_panel_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_cli("panel", env={"STELLAR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "run `stellarstack migrate` first" in result.stderr


@pytest.mark.redis
def test_panel_runs_on_postgres_and_redis(
    tmp_path: Path, postgres_url: str, redis_server: RedisServer
) -> None:
    env = {
        **os.environ,
        "STELLAR_DATA_DIR": str(tmp_path),
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server.url,
    }
    assert run_cli("migrate", env=env).returncode == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stellarstack", "panel", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        import time

        deadline = time.monotonic() + 30
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
            except httpx.HTTPError:
                time.sleep(0.1)
        assert body is not None, "panel did not answer"
        assert body["status"] == "healthy"
        assert body["checks"]["redis"]["mode"] == "redis"
    finally:
        proc.send_signal(2)
        assert proc.wait(20) == 0


def test_user_create_then_duplicate_is_refused(tmp_path: Path) -> None:
    env = {"STELLAR_DATA_DIR": str(tmp_path)}
    assert run_cli("migrate", env=env).returncode == 0
    created = run_cli("user", "create", "--email", "Op@Example.com", "--role", "admin", env=env)
    assert created.returncode == 0, created.stderr
    assert "created admin op@example.com" in created.stdout
    assert "password: " in created.stdout
    again = run_cli("user", "create", "--email", "op@example.com", env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    bad_role = run_cli("user", "create", "--email", "x@example.com", "--role", "GOD", env=env)
    assert bad_role.returncode == 1 and "unknown role" in bad_role.stderr


def test_up_prints_credentials_once_and_reuses_its_data(tmp_path: Path) -> None:
    first = start_embedded_panel(tmp_path)
    try:
        assert first.admin_email and first.admin_password
        assert f"running at {first.url}" in first.text()
        signed_in = httpx.post(
            f"{first.url}/api/v1/auth/sign-in",
            json={"email": first.admin_email, "password": first.admin_password},
        )
        assert signed_in.status_code == 200
        assert signed_in.json()["data"]["user"]["role"] == "super_admin"
    finally:
        assert first.stop() == 0, first.text()
    assert "Traceback" not in first.text()
    assert (tmp_path / "stellarstack.db").exists()
    assert oct((tmp_path / "secret.key").stat().st_mode & 0o777) == "0o600"

    second = start_embedded_panel(tmp_path)
    try:
        assert second.admin_password is None, "the password must be printed only once"
        again = httpx.post(
            f"{second.url}/api/v1/auth/sign-in",
            json={"email": first.admin_email, "password": first.admin_password},
        )
        assert again.status_code == 200
    finally:
        assert second.stop() == 0, second.text()


def test_up_on_a_busy_port_exits_with_one_sentence(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("up", "--port", str(port), env={"STELLAR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
