"""Blueprint test data: the sample eggs (copied here so tests never depend on ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

EGGS_DIR = Path(__file__).resolve().parent / "eggs"
SHARED_EGGS = Path(__file__).resolve().parents[2] / ".." / "shared" / "eggs"


def sample_eggs() -> list[Path]:
    """Every sample egg: the five shared samples plus our PTDL_v1 sample."""
    return sorted(p for p in EGGS_DIR.iterdir() if p.suffix in (".json", ".yaml"))


@pytest.fixture(params=sample_eggs(), ids=lambda p: p.name)
def egg_path(request: pytest.FixtureRequest) -> Path:
    """Each sample egg in turn."""
    path: Path = request.param
    return path
