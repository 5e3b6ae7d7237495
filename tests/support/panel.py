"""Run the real `stellarstack up` in a subprocess and read the first admin's credentials."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from tests.support.services import free_port, stop_process

__all__ = ["LivePanel", "start_embedded_panel", "stop_leftover_servers"]


@dataclass
class LivePanel:
    """A running embedded panel: its URL, first admin credentials and captured output."""

    url: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[str]
    admin_email: str | None
    admin_password: str | None
    output: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> int:
        """Send SIGINT (as Ctrl-C would) and wait; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                stop_process(self.proc)  # type: ignore[arg-type]
        stop_leftover_servers(self.data_dir)
        return int(self.proc.returncode)

    def text(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        return "".join(self.output)


def stop_leftover_servers(data_dir: Path) -> int:
    """Kill game servers a panel left running (they outlive it, by design); return how many.

    Process-runtime servers run under detached supervisors that survive the daemon, so a test
    that stops its panel must also stop what that panel started under `data_dir`.
    """
    root = str(data_dir.resolve())
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or ())
            cwd = proc.info["cwd"] or ""
        except (psutil.Error, OSError):
            continue
        if proc.pid != os.getpid() and (root in cmdline or cwd.startswith(root)):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=5)
    return len(found)


def _pump(proc: subprocess.Popen[str], sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append(line)


def start_embedded_panel(
    data_dir: Path,
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> LivePanel:
    """Start `stellarstack up` on a free port and wait for /health; parse printed credentials."""
    port = port or free_port()
    child_env = {
        **os.environ,
        "STELLAR_DATA_DIR": str(data_dir),
        "STELLAR_LOCAL_ALLOCATION_IP": "127.0.0.1",  # tests address nothing but loopback
        **(env or {}),
    }
    child_env.pop("DATABASE_URL", None)
    child_env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "stellarstack", "up", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env,
    )
    output: list[str] = []
    threading.Thread(target=_pump, args=(proc, output), daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stellarstack up exited early:\n{''.join(output)}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        stop_process(proc)  # type: ignore[arg-type]
        raise RuntimeError(f"stellarstack up did not answer /health:\n{''.join(output)}")
    time.sleep(0.2)  # the banner is printed just before serving; let the pump catch up
    text = "".join(output)
    email = re.search(r"email:\s+(\S+)", text)
    password = re.search(r"password:\s+(\S+)", text)
    return LivePanel(
        url=url,
        port=port,
        data_dir=data_dir,
        proc=proc,
        admin_email=email.group(1) if email else None,
        admin_password=password.group(1) if password else None,
        output=output,
    )
