"""deploy/install-daemon.sh: argument checks, and a dry run against a temporary root."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "install-daemon.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_a_dry_run_writes_the_unit_under_the_root_and_shows_each_command(tmp_path: Path) -> None:
    result = run("--panel", "https://panel.example", "--token", "strk_reg_abc",
                 "--hostname", "203.0.113.9", "--root", str(tmp_path), "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "etc/systemd/system/stellarstack-daemon.service").read_text()
    assert f"ExecStart={tmp_path}/opt/stellarstack/venv/bin/stellarstack daemon --config" in unit
    assert "Restart=always" in unit
    assert (tmp_path / "etc/stellarstack").stat().st_mode & 0o777 == 0o700
    shown = result.stdout
    assert "+ python3 -m venv" in shown
    assert "daemon register --panel https://panel.example" in shown
    assert "--hostname 203.0.113.9" in shown and "--no-start" in shown
    assert "strk_reg_abc" not in shown  # the token travels in the environment, not argv
    assert "+ systemctl enable --now stellarstack-daemon.service" in shown


def test_missing_or_wrong_arguments_are_refused_with_a_reason(tmp_path: Path) -> None:
    root = ("--root", str(tmp_path), "--dry-run")
    cases = [
        ((*root, "--token", "strk_reg_x"), "--panel is required"),
        ((*root, "--panel", "https://p"), "--token is required"),
        ((*root, "--panel", "ftp://p", "--token", "strk_reg_x"), "http://"),
        ((*root, "--panel", "https://p", "--token", "strk_node_x"), "registration token"),
        ((*root, "--panel", "https://p", "--token", "strk_reg_x", "--port", "99999"), "--port"),
        ((*root, "--panel", "https://p", "--token", "strk_reg_x", "--port", "1;id"), "--port"),
        ((*root, "--bogus"), "unknown option"),
    ]
    for args, reason in cases:
        result = run(*args)
        assert result.returncode != 0, args
        assert reason in result.stderr, (args, result.stderr)
