"""A server's variable values, checked against its blueprint before anything is stored.

`check_values` wraps `stellarstack.blueprints.variables.resolve` (unknown names, locked
variables, control characters, the variable's rules) and adds one refusal of its own: a value
may not carry template references (`{{OTHER}}`, `${OTHER}`). Such a value would stay inert in
the startup command anyway (values travel as environment variables) and in config files
(`render_text` expands once), but accepting it invites a later renderer to expand it, so it is
refused outright. Shell syntax (`$(id)`, backticks, `;`) is left to the variable's rules: it is
harmless by construction, and a MOTD may well contain a semicolon.

Every problem becomes a `FieldError` at `variables.NAME`, all of them in one 422.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.blueprints.variables import resolve
from stellarstack.panel.errors import FieldError, ValidationFailed

__all__ = ["TEMPLATE_REFERENCE", "check_values"]

TEMPLATE_REFERENCE = re.compile(r"\{\{.*?\}\}|\$\{[^}]*\}")


def _smuggled(values: Mapping[str, str]) -> list[FieldError]:
    return [
        FieldError(
            f"variables.{name}",
            f"{name} must not contain template references such as {{{{NAME}}}} or ${{NAME}}.",
        )
        for name, value in values.items()
        if TEMPLATE_REFERENCE.search(value)
    ]


def check_values(
    spec: BlueprintSpec,
    given: Mapping[str, str],
    *,
    version: str | None,
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every declared variable's value (given, else `current`, else the default), checked.

    Raises ValidationFailed listing each bad value at `variables.NAME`.
    """
    errors = _smuggled(given)
    merged: dict[str, str] = {}
    if current:
        # Locked variables keep what the server has; only editable ones may be overlaid.
        merged.update(
            {k: v for k, v in current.items() if (var := spec.variable(k)) and var.user_editable}
        )
    merged.update(given)
    resolved = resolve(spec, merged, version=version)
    errors += [FieldError(f"variables.{e.field}", e.message) for e in resolved.errors]
    if errors:
        unique = {(e.field, e.message): e for e in errors}
        raise ValidationFailed(
            list(unique.values()), detail="Some variables are invalid; see the errors by field."
        )
    values = dict(resolved.values)
    if current:
        for name, value in current.items():
            variable = spec.variable(name)
            if variable is not None and not variable.user_editable:
                values[name] = value
    return values
