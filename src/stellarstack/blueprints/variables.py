"""Checking the variable values a user gives against a blueprint's declared variables.

`resolve(blueprint, values)` fills defaults (the version's, then the variable's), refuses
unknown names, values of variables the user may not change, control characters (a newline in
a value could add a line to a config file) and anything the variable's rules reject. It returns
every value as text, ready to be passed as environment variables, plus the errors by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stellarstack.blueprints.model import Blueprint, Variable

__all__ = ["MAX_VALUE_LENGTH", "Resolved", "VariableError", "resolve", "validate"]

MAX_VALUE_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class VariableError:
    """One invalid variable: its name and a message a person can act on."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Resolved:
    """The checked values (every declared variable, as text) and what was wrong."""

    values: dict[str, str]
    errors: list[VariableError]

    @property
    def ok(self) -> bool:
        """Whether every value passed."""
        return not self.errors


def _as_text(variable: Variable, value: object) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        if variable.default in {"0", "1"}:
            return "1" if value else "0"
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _check(variable: Variable, raw: object) -> tuple[str, str | None]:
    text = _as_text(variable, raw)
    if text is None:
        return "", "must be text, a number or true/false"
    if len(text) > MAX_VALUE_LENGTH:
        return "", f"must be at most {MAX_VALUE_LENGTH} characters"
    if _has_control_characters(text):
        return "", "must not contain line breaks or control characters"
    problems = variable.rule_set.check(text)
    return text, ("; ".join(problems) if problems else None)


def resolve(
    blueprint: Blueprint,
    values: Mapping[str, object] | None = None,
    *,
    version: str | None = None,
    editable_only: bool = True,
) -> Resolved:
    """Every declared variable's value, checked; `editable_only` refuses locked variables."""
    given = dict(values or {})
    chosen = blueprint.version(version) if version else blueprint.default_version()
    version_env = chosen.env if chosen else {}
    errors: list[VariableError] = []
    out: dict[str, str] = {}
    for name in given:
        variable = blueprint.variable(name)
        if variable is None:
            errors.append(VariableError(name, f"{blueprint.name} has no variable named {name}"))
        elif editable_only and not variable.user_editable:
            errors.append(VariableError(name, f"{variable.name} cannot be changed"))
    for variable in blueprint.variables:
        if variable.env in given and (variable.user_editable or not editable_only):
            raw: object = given[variable.env]
        else:
            raw = version_env.get(variable.env, variable.default)
        text, problem = _check(variable, raw)
        out[variable.env] = text
        if problem is not None:
            errors.append(VariableError(variable.env, f"{variable.name} {problem}"))
    return Resolved(out, errors)


def validate(
    blueprint: Blueprint,
    values: Mapping[str, object] | None = None,
    *,
    version: str | None = None,
    editable_only: bool = True,
) -> list[VariableError]:
    """The errors of `resolve` alone (empty: the values are acceptable)."""
    return resolve(blueprint, values, version=version, editable_only=editable_only).errors
