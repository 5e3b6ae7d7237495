"""Authenticated API read throughput, as a ratio to a bare FastAPI route in the same run.

DESIGN.md §7: floor = a bare FastAPI route served by uvicorn (wrk -c32); target >= 0.3x the
floor. Both servers run as one uvicorn process each on loopback; wrk (Debian `wrk`) drives them.

    .venv/bin/python bench/api_read.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.services import free_port, stop_process

BARE_APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, object]:
        return {"success": True, "data": {"id": "x", "email": "a@b.c"}}
    """
)


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the server answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {url}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {url}")


def wrk(url: str, seconds: int, connections: int, cookie: str | None = None) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) from wrk."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: stellar_session={cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    refused = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if refused is not None:
        raise SystemExit(f"{url}: {refused.group(1)} responses were not 2xx; not a read benchmark")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    value, unit = float(p99.group(1)), p99.group(2)
    return rps, value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> None:
    """Measure the floor and the panel's authenticated read in one run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package `wrk`)")
    work = Path(tempfile.mkdtemp(prefix="stellar-bench-"))
    (work / "bare_app.py").write_text(BARE_APP)
    env = {
        **os.environ,
        "STELLAR_DATA_DIR": str(work / "data"),
        "STELLAR_LOG_LEVEL": "warning",
        # The bench measures the read path, not 429s: lift the per-caller API limits.
        "STELLAR_RATE_LIMIT_API_ADMIN": "100000000/minute",
        "STELLAR_RATE_LIMIT_API_CLIENT": "100000000/minute",
    }
    bare_port, panel_port = free_port(), free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    bare = subprocess.Popen(
        [*uvicorn, "--app-dir", str(work), "bare_app:app", "--port", str(bare_port)], env=env
    )
    panel = subprocess.Popen(
        [sys.executable, "-m", "stellarstack", "up", "--port", str(panel_port)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_up(f"http://127.0.0.1:{bare_port}/bare", bare)  # type: ignore[arg-type]
        wait_up(f"http://127.0.0.1:{panel_port}/health", panel)  # type: ignore[arg-type]
        assert panel.stdout is not None
        banner = ""
        while "password:" not in banner:
            banner += panel.stdout.readline()
        email = re.search(r"email:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        password = re.search(r"password:\s+(\S+)", banner).group(1)  # type: ignore[union-attr]
        signed = httpx.post(
            f"http://127.0.0.1:{panel_port}/api/v1/auth/sign-in",
            json={"email": email, "password": password},
        )
        cookie = signed.cookies["stellar_session"]
        floor_rps, floor_p99 = wrk(
            f"http://127.0.0.1:{bare_port}/bare", args.seconds, args.connections
        )
        rps, p99 = wrk(
            f"http://127.0.0.1:{panel_port}/api/v1/users/me", args.seconds, args.connections, cookie
        )
    finally:
        stop_process(bare)  # type: ignore[arg-type]
        stop_process(panel)  # type: ignore[arg-type]
        shutil.rmtree(work, ignore_errors=True)
    print(f"floor  bare FastAPI route        {floor_rps:9.0f} req/s  p99 {floor_p99:7.2f} ms")
    print(
        f"panel  GET /api/v1/users/me      {rps:9.0f} req/s  p99 {p99:7.2f} ms  "
        f"(session cookie, SQLite)"
    )
    print(f"ratio  {rps / floor_rps:.2f}x the floor (target >= 0.30x, p99 < 50 ms)")


if __name__ == "__main__":
    main()
