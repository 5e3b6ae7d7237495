"""docs/blueprints.md stays true: its full example is a valid blueprint."""

from __future__ import annotations

import re
from pathlib import Path

from stellarstack.blueprints.model import Blueprint

DOC = Path(__file__).resolve().parents[2] / "docs" / "blueprints.md"


def test_the_documented_example_validates() -> None:
    example = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    blueprint = Blueprint.from_yaml(example.group(1), origin="docs/blueprints.md")
    assert blueprint.slug == "minecraft-paper"
    assert blueprint.image_for("1.20.4") == "itzg/minecraft-server:java17"
    assert blueprint.process is not None and blueprint.install is not None
