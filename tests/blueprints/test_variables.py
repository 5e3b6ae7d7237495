"""Checking a user's variable values against a blueprint."""

from __future__ import annotations

import pytest

from stellarstack.blueprints.loader import CATALOG_DIR
from stellarstack.blueprints.model import Blueprint
from stellarstack.blueprints.variables import resolve, validate


@pytest.fixture(scope="module")
def paper() -> Blueprint:
    return Blueprint.from_yaml((CATALOG_DIR / "minecraft-paper.yaml").read_text())


def test_defaults_and_version_values_fill_what_the_user_left_out(paper: Blueprint) -> None:
    resolved = resolve(paper, {"MAX_PLAYERS": 40}, version="1.20.6")
    assert resolved.ok, resolved.errors
    assert resolved.values["MAX_PLAYERS"] == "40"
    assert resolved.values["VERSION"] == "1.20.6"
    assert resolved.values["EULA"] == "TRUE"


def _fields(errors: list[object]) -> dict[str, str]:
    return {e.field: e.message for e in errors}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"MAX_PLAYERS": "5000"}, "MAX_PLAYERS", "Max players must be between 1 and 1000"),
        ({"MAX_PLAYERS": "20; rm -rf /"}, "MAX_PLAYERS", "Max players must be a whole number"),
        ({"DIFFICULTY": "{{EULA}}"}, "DIFFICULTY", "Difficulty must be one of"),
        ({"MOTD": "hi\nenable-rcon=true"}, "MOTD", "must not contain line breaks"),
        ({"MOTD": "x" * 5000}, "MOTD", "must be at most 4096 characters"),
        ({"MOTD": ["a"]}, "MOTD", "must be text, a number or true/false"),
        ({"EULA": "FALSE"}, "EULA", "cannot be changed"),
        ({"TYPE": "VANILLA"}, "TYPE", "cannot be changed"),
        ({"LD_PRELOAD": "/tmp/x.so"}, "LD_PRELOAD", "has no variable named LD_PRELOAD"),
        ({"MEMORY": "$(id)"}, "MEMORY", "has an invalid format"),
    ],
)
def test_hostile_or_invalid_values_are_refused_by_field(
    paper: Blueprint, values: dict[str, object], field: str, message: str
) -> None:
    errors = _fields(validate(paper, values))
    assert field in errors and message in errors[field], errors


def test_template_syntax_in_a_free_text_value_is_kept_literally(paper: Blueprint) -> None:
    resolved = resolve(paper, {"MOTD": "{{EULA}} ${TYPE} $(id)"})
    assert resolved.ok
    assert resolved.values["MOTD"] == "{{EULA}} ${TYPE} $(id)"


def test_booleans_follow_the_default_spelling() -> None:
    blueprint = Blueprint.from_data(
        {
            "slug": "bool-test",
            "name": "Bool",
            "docker": {"image": "busybox:latest"},
            "ports": [{"name": "game", "port": 1}],
            "startup": {"command": "run", "stop": {"signal": "SIGTERM"}},
            "variables": [
                {"env": "A", "name": "A", "default": "0", "rules": "boolean"},
                {"env": "B", "name": "B", "default": "false", "rules": "in:true,false"},
            ],
        }
    )
    assert resolve(blueprint, {"A": True, "B": True}).values == {"A": "1", "B": "true"}
