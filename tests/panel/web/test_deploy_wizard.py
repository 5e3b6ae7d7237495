"""The deploy wizard's pure parts: stage names placed on the step list, form parsing, errors."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.panel.db.enums import DeploymentStatus, ServerStatus
from stellarstack.panel.db.models import Deployment, Server
from stellarstack.panel.errors import Conflict, FieldError, ValidationFailed
from stellarstack.panel.web.deploy_progress import STEPS, progress_view, step_index
from stellarstack.panel.web.deploy_wizard import (
    field_errors,
    parse_form,
    to_server_create,
    variable_fields,
)
from tests.panel.web.test_server_pages import GAME_YAML

SPEC = BlueprintSpec.from_yaml(GAME_YAML)
KEYS = [key for key, _, _ in STEPS]


@pytest.mark.parametrize(
    ("stage", "key"),
    [
        ("pulling_image", "pulling_image"),
        ("image.pull", "pulling_image"),
        ("installing", "installing"),
        ("install_script", "installing"),
        ("creating_container", "creating_container"),
        ("starting", "starting"),
        ("waiting_ready", "waiting_ready"),
        ("ready_check", "waiting_ready"),
        (None, "pulling_image"),
        ("something new", "pulling_image"),
    ],
)
def test_a_daemon_stage_lands_on_the_step_a_person_reads(stage: str | None, key: str) -> None:
    assert KEYS[step_index(stage)] == key


def _server(status: ServerStatus) -> Server:
    return Server(name="s", memory_mb=1, disk_mb=1, status=status, install_error=None)


def test_progress_is_done_only_when_the_server_runs() -> None:
    deployment = Deployment(status=DeploymentStatus.RUNNING, step="starting", progress=80)
    view = progress_view(deployment, _server(ServerStatus.STARTING))
    assert not view.finished and not view.online and view.percent == 80
    assert [s.state for s in view.steps][KEYS.index("starting")] == "current"
    view = progress_view(deployment, _server(ServerStatus.RUNNING))
    assert view.online and view.finished and view.percent == 100
    assert {s.state for s in view.steps} == {"done"}


def test_a_failed_deployment_marks_its_step_failed_and_carries_the_error() -> None:
    deployment = Deployment(
        status=DeploymentStatus.FAILED, step="pulling_image", progress=10, error="no such image"
    )
    view = progress_view(deployment, _server(ServerStatus.INSTALL_FAILED))
    assert view.failed and view.finished and view.error == "no such image"
    assert view.steps[KEYS.index("pulling_image")].state == "failed"


def test_the_form_keeps_only_this_blueprints_editable_variables_and_the_last_checkbox_value() -> (
    None
):
    values = parse_form(
        [("name", " A "), ("var.PVP", "false"), ("var.PVP", "true"), ("var.SECRET", "mine"),
         ("var.NOPE", "x"), ("node", "")],
        SPEC,
    )  # fmt: skip
    assert values.name == "A" and values.node == "auto"
    assert values.variables == {"PVP": "true"}


def test_variable_inputs_follow_rules_and_hide_what_users_may_not_see() -> None:
    fields = {f.env: f for f in variable_fields(SPEC, {"WORLD": "<b>"})}
    assert "SECRET" not in fields
    assert fields["MODE"].kind == "select" and fields["MODE"].options == ("survival", "creative")
    assert fields["PVP"].kind == "boolean"
    assert fields["SLOTS"].kind == "number"
    assert (fields["SLOTS"].minimum, fields["SLOTS"].maximum) == (1, 100)
    assert fields["WORLD"].value == "<b>"  # escaping is the template's job


def test_errors_are_keyed_by_form_field() -> None:
    with pytest.raises(ValidationError) as caught:
        to_server_create("g", parse_form([("name", ""), ("memory_mb", "1"), ("node", "x")], SPEC))
    errors, general = field_errors(caught.value)
    assert {"name", "memory_mb", "node"} <= errors.keys() and general is None
    failed = ValidationFailed(
        [FieldError("variables.WORLD", "bad"), FieldError("nodeId", "full"),
         FieldError("memoryMb", "quota")]
    )  # fmt: skip
    errors, _ = field_errors(failed)
    assert errors == {"var.WORLD": "bad", "node": "full", "memory_mb": "quota"}
    assert field_errors(Conflict("No node has room.")) == ({}, "No node has room.")
    assert to_server_create("g", parse_form([("name", "x"), ("node", str(uuid.UUID(int=1)))], SPEC))
