"""Rendering a startup command from variables so that no value can change the command.

A startup command is a template (`java -jar {{SERVER_JARFILE}} --port ${SERVER_PORT}`) written
by the blueprint's author; the values come from users. Three renderings:

- `shell_command(template, names)` — for `sh -c`: each reference to a known variable becomes a
  quoted reference to an environment variable (`"${SERVER_JARFILE}"`), chosen to suit the
  quoting around it. The values travel separately, as the process environment, so the shell
  never parses them: `$(id)`, backticks, `;` and `{{OTHER}}` in a value stay plain text.
- `argv(template, values)` — for running without a shell: the template is split into words
  first, then each word's references are replaced literally, once. A value can neither add a
  word nor be expanded again. Templates that need a shell (`;`, `&&`, `$(…)`) are refused.
- `display(template, values)` — a readable preview for people (values shell-quoted); never run.

References to names the blueprint does not declare are left alone inside `${…}` (the shell
reads them from the container's environment, like `${HOME}`) and refused inside `{{…}}`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from stellarstack.blueprints.errors import BlueprintError

__all__ = [
    "NeedsShell",
    "ShellCommand",
    "UnknownVariable",
    "argv",
    "display",
    "render_text",
    "shell_command",
]

REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SHELL_OPERATORS = frozenset(";&|<>`\n")


class UnknownVariable(BlueprintError):
    """A template references `{{NAME}}` that is neither declared nor built in."""


class NeedsShell(BlueprintError):
    """The template uses shell syntax, so it cannot run as a plain argument list."""


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """A command for `sh -c` and the environment that carries the values."""

    script: str
    env: dict[str, str]

    def argv(self, shell: str = "/bin/sh") -> list[str]:
        """The argument list that runs it."""
        return [shell, "-c", self.script]


def _name(match: re.Match[str]) -> tuple[str, bool]:
    """The referenced name and whether it was written `{{…}}`."""
    if match.group(1) is not None:
        return match.group(1), True
    return match.group(2), False


def _scan(
    template: str,
    known: Collection[str],
    on_reference: Callable[[str, str], str],
) -> tuple[str, bool]:
    """Walk the template with its shell quoting state; replace known references.

    `on_reference(name, state)` gives the replacement for a reference in state `plain`,
    `double` or `single`. Returns the new text and whether shell syntax was seen unquoted.
    """
    out: list[str] = []
    state = "plain"
    needs_shell = False
    index = 0
    while index < len(template):
        match = REFERENCE.match(template, index)
        if match is not None:
            name, mustache = _name(match)
            if name in known and (mustache or state != "single"):
                out.append(on_reference(name, state))
                index = match.end()
                continue
            if mustache:
                raise UnknownVariable(f"the command uses {{{{{name}}}}}, which is not declared")
        char = template[index]
        if state == "plain":
            if char == "\\" and index + 1 < len(template):
                out.append(template[index : index + 2])
                index += 2
                continue
            if char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char in SHELL_OPERATORS or template.startswith("$(", index):
                needs_shell = True
            elif char == "$":
                needs_shell = True  # $VAR, $((…)): leave it to a shell
        elif state == "double":
            if char == "\\" and index + 1 < len(template):
                out.append(template[index : index + 2])
                index += 2
                continue
            if char == '"':
                state = "plain"
            elif char in "`$":
                needs_shell = True
        elif char == "'":
            state = "plain"
        out.append(char)
        index += 1
    if state != "plain":
        raise NeedsShell("the command has an unclosed quote")
    return "".join(out), needs_shell


def shell_command(
    template: str, values: Mapping[str, str], *, builtins: Collection[str] = ()
) -> ShellCommand:
    """The template as a `sh -c` script reading each value from the environment."""
    known = set(values) | set(builtins)

    def reference(name: str, state: str) -> str:
        if state == "plain":
            return f'"${{{name}}}"'
        if state == "double":
            return f"${{{name}}}"
        return f"'\"${{{name}}}\"'"  # close the single quote, expand, reopen

    script, _ = _scan(template, known, reference)
    return ShellCommand(script, {k: str(v) for k, v in values.items()})


def argv(template: str, values: Mapping[str, str]) -> list[str]:
    """The template as an argument list with each value inserted literally, once."""
    placeholders: dict[str, str] = {}

    def reference(name: str, state: str) -> str:
        token = f"\x00{len(placeholders)}\x00"
        placeholders[token] = values[name]
        return token

    marked, needs_shell = _scan(template, set(values), reference)
    if needs_shell:
        raise NeedsShell("the command uses shell syntax; run it with shell_command()")
    words = shlex.split(marked, posix=True)
    marker = re.compile("\x00\\d+\x00")
    return [marker.sub(lambda m: placeholders[m.group(0)], word) for word in words]


def display(template: str, values: Mapping[str, str], *, builtins: Collection[str] = ()) -> str:
    """A preview for people: each value shell-quoted in place. Never execute it.

    Built-in names without a value (`SERVER_PORT` before a server exists) stay as `{{NAME}}`.
    """

    def reference(name: str, state: str) -> str:
        if name not in values:
            return "{{" + name + "}}"
        return shlex.quote(values[name]) if state == "plain" else values[name]

    try:
        text, _ = _scan(template, set(values) | set(builtins), reference)
    except NeedsShell:
        return template
    return text


def render_text(template: str, values: Mapping[str, str]) -> str:
    """Replace `{{NAME}}` and `${NAME}` of known names literally, once (config-file values).

    Unknown names are left as written; a value containing `{{…}}` is never expanded again.
    """

    def replace(match: re.Match[str]) -> str:
        name, _ = _name(match)
        return values[name] if name in values else match.group(0)

    return REFERENCE.sub(replace, template)
