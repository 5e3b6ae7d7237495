"""The shipped catalogue: every blueprint validates and carries what deployment needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stellarstack.blueprints.loader import CATALOG_DIR, load_catalog
from stellarstack.blueprints.model import Blueprint

CATALOG_FILES = sorted(CATALOG_DIR.glob("*.yaml"))
REQUIRED_GAMES = {
    "minecraft-paper",
    "minecraft-vanilla",
    "minecraft-fabric",
    "minecraft-forge",
    "minecraft-bedrock",
    "valheim",
    "rust",
    "counter-strike-2",
    "terraria",
    "ark-survival-evolved",
    "factorio",
    "satisfactory",
    "palworld",
    "luanti",
    "mumble",
}


@pytest.mark.parametrize("path", CATALOG_FILES, ids=lambda p: p.stem)
def test_every_shipped_blueprint_validates(path: Path) -> None:
    blueprint = Blueprint.from_yaml(path.read_text(), origin=path.name)
    assert blueprint.slug == path.stem, "a catalogue file is named after its slug"
    assert blueprint.ports and blueprint.startup.stop
    assert blueprint.versions, "every shipped blueprint offers at least one version"
    assert blueprint.startup.ready is not None, "every shipped blueprint says when it is ready"
    if blueprint.startup.ready.pattern:
        re.compile(blueprint.startup.ready.pattern)
    for variable in blueprint.variables:
        assert not variable.rule_set.unknown
    schema = blueprint.json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    editable = {v.env for v in blueprint.variables if v.user_editable}
    assert set(schema["properties"]) == editable


def test_catalogue_has_the_games_people_host_most() -> None:
    result = load_catalog()
    assert not result.problems, result.problems
    slugs = {loaded.blueprint.slug for loaded in result.loaded}
    assert slugs >= REQUIRED_GAMES, REQUIRED_GAMES - slugs
    assert len(slugs) >= 20


def test_minecraft_ready_check_matches_the_real_done_line() -> None:
    paper = Blueprint.from_yaml((CATALOG_DIR / "minecraft-paper.yaml").read_text())
    assert paper.startup.ready is not None and paper.startup.ready.pattern
    line = '[12:01:44 INFO]: Done (6.512s)! For help, type "help"'
    assert re.search(paper.startup.ready.pattern, line)
    assert not re.search(paper.startup.ready.pattern, "[12:01:40 INFO]: Preparing level")
    assert paper.image_for("1.20.4") == "itzg/minecraft-server:java17"
    assert paper.image_for("1.21.4") == "itzg/minecraft-server:java21"


def test_luanti_runs_debians_binary_as_a_process_and_names_an_image() -> None:
    luanti = Blueprint.from_yaml((CATALOG_DIR / "luanti.yaml").read_text())
    assert luanti.process is not None and luanti.process.binaries == ["minetestserver"]
    assert luanti.startup.command and luanti.startup.command.startswith("minetestserver ")
    assert luanti.docker.image
    assert luanti.ports[0].protocol == "udp" and luanti.ports[0].port == 30000
    assert luanti.startup.ready is not None and luanti.startup.ready.pattern
    ready = 'Server for gameid="minetest" listening on [::]:30000.'
    assert re.search(luanti.startup.ready.pattern, ready)
