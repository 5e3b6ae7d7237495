"""Startup rendering: values are inserted literally and can never change the command."""

from __future__ import annotations

import subprocess

import pytest

from stellarstack.blueprints.startup import (
    NeedsShell,
    UnknownVariable,
    argv,
    display,
    render_text,
    shell_command,
)

HOSTILE = [
    "; rm -rf /",
    "$(id)",
    "`id`",
    "{{OTHER}}",
    "${OTHER}",
    "a\nb",
    "' \" \\",
    "$HOME && echo pwned",
    "*",
]


def _run(script: str, env: dict[str, str]) -> list[str]:
    """Run a rendered script whose command is `printf '[%s]'`, returning the arguments seen."""
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True, cwd="/"
    )
    return result.stdout.split("\0")[:-1]


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_rendering_passes_hostile_values_as_one_literal_argument(value: str) -> None:
    template = "printf '%s\\0' --name {{NAME}} \"{{NAME}}\" 'quoted {{NAME}}' ${NAME} end"
    command = shell_command(template, {"NAME": value, "OTHER": "expanded!"})
    assert value not in command.script, "values travel in the environment, not the script"
    assert _run(command.script, command.env) == [
        "--name",
        value,
        value,
        f"quoted {value}",
        value,
        "end",
    ]


def test_undeclared_dollar_references_are_left_to_the_shell() -> None:
    command = shell_command("printf '%s\\0' ${HOME} {{PORT}}", {"PORT": "25565"})
    assert "${HOME}" in command.script
    assert _run(command.script, {**command.env, "HOME": "/home/container"}) == [
        "/home/container",
        "25565",
    ]


def test_undeclared_mustache_reference_is_refused() -> None:
    with pytest.raises(UnknownVariable, match="SECRET"):
        shell_command("run {{SECRET}}", {"PORT": "1"})


def test_builtins_are_known_without_a_value() -> None:
    command = shell_command("run --port {{SERVER_PORT}}", {}, builtins={"SERVER_PORT"})
    assert command.script == 'run --port "${SERVER_PORT}"'


@pytest.mark.parametrize("value", HOSTILE)
def test_argv_rendering_keeps_each_value_inside_its_word(value: str) -> None:
    words = argv(
        "minetestserver --world {{WORLD}} --gameid=x{{GAME}}y", {"WORLD": value, "GAME": value}
    )
    assert words == ["minetestserver", "--world", value, f"--gameid=x{value}y"]


@pytest.mark.parametrize(
    "template", ["a; b", "a && b", "echo $(id)", "echo `id`", "a | b", "echo $HOME"]
)
def test_argv_refuses_templates_that_need_a_shell(template: str) -> None:
    with pytest.raises(NeedsShell):
        argv(template, {})


def test_unclosed_quote_is_refused() -> None:
    with pytest.raises(NeedsShell, match="unclosed"):
        shell_command("echo 'oops", {})


def test_display_quotes_values_for_people() -> None:
    assert display("java -jar {{JAR}}", {"JAR": "my server.jar"}) == "java -jar 'my server.jar'"


def test_display_leaves_builtins_without_values_as_placeholders() -> None:
    text = display("run --port {{SERVER_PORT}} {{MAP}}", {"MAP": "a b"}, builtins={"SERVER_PORT"})
    assert text == "run --port {{SERVER_PORT}} 'a b'"


def test_render_text_substitutes_once() -> None:
    values = {"A": "{{B}}", "B": "secret"}
    assert render_text("x={{A}} y=${B} z={{C}}", values) == "x={{B}} y=secret z={{C}}"
