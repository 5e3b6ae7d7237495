"""Loading a directory: one broken file never hides the others; symlinks cannot leave it."""

from __future__ import annotations

import shutil
from pathlib import Path

from stellarstack.blueprints.loader import CATALOG_DIR, MAX_FILE_BYTES, load_directory
from tests.blueprints.conftest import EGGS_DIR


def test_directory_loads_blueprints_and_eggs_and_lists_problems(tmp_path: Path) -> None:
    shutil.copy(CATALOG_DIR / "valheim.yaml", tmp_path / "valheim.yaml")
    shutil.copy(EGGS_DIR / "pterodactyl-redbot.json", tmp_path / "red.json")
    (tmp_path / "typo.yaml").write_text(
        (CATALOG_DIR / "mumble.yaml").read_text().replace("startup:", "startupp:")
    )
    (tmp_path / "zz-dup.yml").write_text((CATALOG_DIR / "valheim.yaml").read_text())
    (tmp_path / "big.yaml").write_text("#" * (MAX_FILE_BYTES + 1))
    (tmp_path / "notes.txt").write_text("ignored")
    outside = tmp_path.parent / "outside-secret.yaml"
    outside.write_text((CATALOG_DIR / "rust.yaml").read_text())
    (tmp_path / "link.yaml").symlink_to(outside)

    result = load_directory(tmp_path)

    assert sorted(loaded.blueprint.slug for loaded in result.loaded) == ["red", "valheim"]
    red = next(loaded for loaded in result.loaded if loaded.blueprint.slug == "red")
    assert red.report is not None and red.blueprint.source.kind == "egg"
    problems = {p.origin: p.message for p in result.problems}
    assert set(problems) == {"typo.yaml", "zz-dup.yml", "big.yaml"}
    assert "startupp" in problems["typo.yaml"]
    assert "already defined by" in problems["zz-dup.yml"]


def test_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    result = load_directory(tmp_path / "nope")
    assert not result.loaded and result.problems[0].message == "is not a directory"


def test_two_eggs_of_one_game_both_import_the_second_under_a_free_slug(tmp_path: Path) -> None:
    shutil.copy(EGGS_DIR / "pelican-vanilla-minecraft.yaml", tmp_path / "a.yaml")
    shutil.copy(EGGS_DIR / "pterodactyl-vanilla-minecraft.json", tmp_path / "b.json")
    (tmp_path / "c.json").write_text((EGGS_DIR / "pterodactyl-vanilla-minecraft.json").read_text())

    result = load_directory(tmp_path)

    assert not result.problems
    slugs = [loaded.blueprint.slug for loaded in result.loaded]
    assert slugs == ["vanilla-minecraft", "vanilla-minecraft-2", "vanilla-minecraft-3"]
    second = result.loaded[1]
    assert second.report is not None
    assert any("imported as vanilla-minecraft-2" in w for w in second.report.warnings)
