"""The blueprint format: typos and inconsistencies fail loudly, with the field's path."""

from __future__ import annotations

from typing import Any

import pytest

from stellarstack.blueprints.errors import InvalidBlueprint
from stellarstack.blueprints.model import Blueprint


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "test-game",
        "name": "Test game",
        "docker": {"image": "busybox:latest"},
        "ports": [{"name": "game", "port": 7777, "protocol": "udp"}],
        "variables": [{"env": "MAP", "name": "Map", "default": "one", "rules": "required"}],
        "startup": {
            "command": "game --map {{MAP}} --port {{SERVER_PORT}}",
            "stop": {"command": "quit"},
        },
    }
    data.update(overrides)
    return data


def problems_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidBlueprint) as caught:
        Blueprint.from_data(data)
    return dict(caught.value.problems)


def test_minimal_blueprint_gets_defaults() -> None:
    blueprint = Blueprint.from_data(minimal())
    assert blueprint.resources.memory_mb == 1024
    assert blueprint.volumes[0].path == "/data"
    assert blueprint.default_version() is None
    assert blueprint.image_for(None) == "busybox:latest"


def test_a_typo_is_an_error_with_its_path() -> None:
    data = minimal()
    data["startup"]["stop"] = {"comand": "quit"}
    problems = problems_of(data)
    assert "startup.stop.comand" in problems
    assert "Extra inputs are not permitted" in problems["startup.stop.comand"]


def test_undeclared_variable_in_the_startup_command_is_refused() -> None:
    problems = problems_of(
        minimal(startup={"command": "game {{NOPE}}", "stop": {"signal": "SIGINT"}})
    )
    assert any("{{NOPE}}" in m for m in problems.values())


def test_unknown_rule_is_refused_in_our_own_format() -> None:
    problems = problems_of(minimal(variables=[{"env": "MAP", "name": "Map", "rules": "requird"}]))
    assert "unknown rule(s): requird" in problems["variables.0.rules"]


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/shadow", "a/../../b", "..\\x"])
def test_config_files_stay_inside_the_server_directory(path: str) -> None:
    problems = problems_of(
        minimal(config_files=[{"path": path, "parser": "properties", "set": {"a": "b"}}])
    )
    assert problems["config_files.0.path"] == "must be a path inside the server directory"


def test_stop_needs_exactly_one_of_command_or_signal() -> None:
    data = minimal()
    data["startup"]["stop"] = {"command": "quit", "signal": "SIGINT"}
    assert "give exactly one of command or signal" in problems_of(data)["startup.stop"]


@pytest.mark.parametrize("icon", ["javascript:alert(1)", "https://x/<script>", "data:text/html,x"])
def test_icons_must_be_safe_urls(icon: str) -> None:
    assert "icon" in problems_of(minimal(icon=icon))


def test_version_may_not_set_an_undeclared_variable() -> None:
    problems = problems_of(minimal(versions=[{"tag": "1", "env": {"LD_PRELOAD": "x"}}]))
    assert any("undeclared LD_PRELOAD" in m for m in problems.values())


def test_yaml_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidBlueprint, match="mapping"):
        Blueprint.from_yaml("- just\n- a list\n")
    with pytest.raises(InvalidBlueprint, match="not valid YAML"):
        Blueprint.from_yaml("slug: [unclosed\n")


def test_round_trip_through_data() -> None:
    blueprint = Blueprint.from_data(minimal())
    assert Blueprint.from_data(blueprint.to_data()) == blueprint
