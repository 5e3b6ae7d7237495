"""The deploy wizard's view of a blueprint: versions, resources, variable inputs, form parsing.

The wizard posts a plain HTML form; this module turns it into the API's `ServerCreate` (so the
page and `POST /api/v1/servers` validate the same way) and turns validation errors back into
messages keyed by form field, shown next to the inputs with what the user typed kept.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.blueprints.model import Variable
from stellarstack.panel.db.models import Blueprint
from stellarstack.panel.domain.servers.schemas import ServerCreate
from stellarstack.panel.errors import PanelError, ValidationFailed

__all__ = [
    "AUTO_NODE",
    "VAR_PREFIX",
    "DeployValues",
    "VariableField",
    "VersionChoice",
    "default_values",
    "field_errors",
    "parse_form",
    "to_server_create",
    "variable_fields",
    "version_choices",
]

AUTO_NODE = "auto"
VAR_PREFIX = "var."
RESOURCE_FIELDS = ("memory_mb", "cpu", "disk_mb")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class VersionChoice:
    """One entry of the version select."""

    tag: str
    label: str
    recommended: bool
    channel: str
    deprecation_notice: str | None


@dataclass(frozen=True, slots=True)
class VariableField:
    """One blueprint variable as a form input: its kind, value, and the rules shown beside it."""

    env: str
    name: str
    description: str
    kind: str
    value: str
    editable: bool
    required: bool
    rules: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def input_name(self) -> str:
        """The form field that carries this variable."""
        return VAR_PREFIX + self.env


@dataclass
class DeployValues:
    """What the user typed into the configure step (kept when the form comes back with errors)."""

    name: str = ""
    version: str = ""
    node: str = AUTO_NODE
    memory_mb: str = ""
    cpu: str = ""
    disk_mb: str = ""
    variables: dict[str, str] = field(default_factory=dict)


def version_choices(row: Blueprint) -> list[VersionChoice]:
    """The blueprint's versions in display order, the recommended one marked."""
    return [
        VersionChoice(v.tag, v.name or v.tag, v.recommended, v.channel, v.deprecation_notice)
        for v in row.versions
    ]


def _kind(variable: Variable) -> tuple[str, tuple[str, ...]]:
    rules = variable.rule_set
    options = next((r.args for r in rules.rules if r.name == "in"), ())
    if variable.field_type in ("select", "boolean", "password", "number"):
        return variable.field_type, options
    if options:
        return "select", options
    if rules.kind == "boolean":
        return "boolean", ()
    if rules.kind in ("integer", "numeric"):
        return "number", ()
    return "text", ()


def variable_fields(spec: BlueprintSpec, values: Mapping[str, str]) -> list[VariableField]:
    """The variables a user may see, as inputs (read-only when not editable), in blueprint order."""
    fields: list[VariableField] = []
    for variable in spec.variables:
        if not variable.user_viewable:
            continue
        kind, options = _kind(variable)
        schema = variable.rule_set.json_schema()
        numeric = kind == "number"
        fields.append(
            VariableField(
                env=variable.env,
                name=variable.name,
                description=variable.description,
                kind=kind,
                value=values.get(variable.env, variable.default),
                editable=variable.user_editable,
                required=variable.rule_set.required,
                rules=str(variable.rule_set),
                options=options,
                minimum=schema.get("minimum") if numeric else None,
                maximum=schema.get("maximum") if numeric else None,
            )
        )
    return fields


def default_values(row: Blueprint, spec: BlueprintSpec) -> DeployValues:
    """The configure step before the user changes anything: the blueprint's defaults."""
    recommended = next((v.tag for v in row.versions if v.recommended), None)
    first = row.versions[0].tag if row.versions else ""
    return DeployValues(
        name=row.name[:64],
        version=recommended or first,
        memory_mb=str(row.default_memory_mb),
        cpu=str(row.default_cpu),
        disk_mb=str(row.default_disk_mb),
        variables={v.env: v.default for v in spec.variables if v.user_editable},
    )


def _last(form: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    # A checkbox rides after its hidden "false" twin: the last value of a name wins.
    pairs = form.items() if isinstance(form, Mapping) else form
    out: dict[str, str] = {}
    for key, value in pairs:
        out[key] = value
    return out


def parse_form(pairs: Iterable[tuple[str, str]], spec: BlueprintSpec) -> DeployValues:
    """The configure step's form as typed (strings, trimmed; only this blueprint's variables)."""
    form = _last(pairs)
    editable = {v.env for v in spec.variables if v.user_viewable and v.user_editable}
    return DeployValues(
        name=form.get("name", "").strip(),
        version=form.get("version", "").strip(),
        node=form.get("node", AUTO_NODE).strip() or AUTO_NODE,
        memory_mb=form.get("memory_mb", "").strip(),
        cpu=form.get("cpu", "").strip(),
        disk_mb=form.get("disk_mb", "").strip(),
        variables={
            key[len(VAR_PREFIX) :]: value
            for key, value in form.items()
            if key.startswith(VAR_PREFIX) and key[len(VAR_PREFIX) :] in editable
        },
    )


def _node_id(value: str) -> uuid.UUID | str | None:
    if value == AUTO_NODE:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return value  # left for ServerCreate to refuse with a field error


def to_server_create(slug: str, values: DeployValues) -> ServerCreate:
    """The API body for these form values; raises pydantic's ValidationError on bad input."""
    body: dict[str, object] = {
        "name": values.name,
        "blueprint": slug,
        "version": values.version or None,
        "node_id": _node_id(values.node),
        "variables": values.variables,
    }
    for name in RESOURCE_FIELDS:
        body[name] = getattr(values, name) or None
    return ServerCreate.model_validate(body)


def _form_field(path: Iterable[str | int]) -> str:
    parts = [str(p) for p in path]
    if not parts:
        return ""
    head = _CAMEL.sub("_", parts[0]).lower()
    if head == "variables" and len(parts) > 1:
        return VAR_PREFIX + parts[1]
    if head == "node_id" or head == "region" or head == "allocation_ids":
        return "node"
    return head


def field_errors(exc: ValidationError | PanelError) -> tuple[dict[str, str], str | None]:
    """Messages keyed by form field, and one for the whole form (errors with no field)."""
    errors: dict[str, str] = {}
    general: str | None = None
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            name = _form_field(error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            errors.setdefault(name, message[0].upper() + message[1:] if message else "Invalid.")
    elif isinstance(exc, ValidationFailed):
        for item in exc.errors:
            errors.setdefault(_form_field(item.field.split(".", 1) if item.field else []),
                              item.message)  # fmt: skip
    else:
        general = exc.detail or "The server could not be deployed."
    if "" in errors:
        general = errors.pop("")
    return errors, general
