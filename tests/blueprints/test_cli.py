"""`stellarstack blueprint import|list`: the report and counts are printed; saves are real."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from stellarstack.cli import app
from tests.blueprints.conftest import EGGS_DIR

runner = CliRunner()


def test_dry_run_prints_each_egg_report_and_the_counts(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["blueprint", "import", str(EGGS_DIR), "--dry-run", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "PTDL_v1: " in result.output and "PLCN_v3: " in result.output
    assert "unmapped config.files[\"settings.xml\"]: the 'xml' config parser" in result.output
    assert "read 6 blueprint(s) (6 from eggs, 11 unmapped field(s)), 0 failed" in result.output
    assert "imported as vanilla-minecraft-2" in result.output  # two eggs of one game
    assert not (tmp_path / "stellarstack.db").exists(), "a dry run touches no database"


def test_import_saves_and_list_shows_it(tmp_path: Path) -> None:
    assert runner.invoke(app, ["migrate", "--data-dir", str(tmp_path)]).exit_code == 0
    egg = EGGS_DIR / "pterodactyl-redbot.json"
    imported = runner.invoke(app, ["blueprint", "import", str(egg), "--data-dir", str(tmp_path)])
    assert imported.exit_code == 0, imported.output
    assert "saved: 1 created, 0 updated, 0 unchanged, 0 skipped" in imported.output
    again = runner.invoke(app, ["blueprint", "import", str(egg), "--data-dir", str(tmp_path)])
    assert "saved: 0 created, 0 updated, 1 unchanged, 0 skipped" in again.output
    listed = runner.invoke(app, ["blueprint", "list", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    lines = {line.split()[0]: line for line in listed.output.splitlines() if line.strip()}
    assert lines["red"].rstrip().endswith("egg")
    assert lines["luanti"].rstrip().endswith("builtin")


def test_missing_source_fails_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["blueprint", "import", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert "is not a file, a directory or an http(s) URL" in result.output
