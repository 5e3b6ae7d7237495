"""Laravel-style validation rules (`required|string|max:20`) as rule objects that check values.

Pterodactyl and Pelican eggs describe their variables with Laravel rule strings; our blueprints
use the same vocabulary so eggs translate one to one. `parse_rules` turns a rule string (or a
list of rule strings) into a `RuleSet`; rules it does not know are kept in `RuleSet.unknown`
(our own YAML refuses them, the egg importer reports them). `RuleSet.check(value)` lists what
is wrong with one value, in words a person can act on.

Regular expressions (`regex:/…/`) are compiled by `patterns` (bounded, ReDoS shapes refused,
matches time-limited); each rule's check lives in `rule_checks`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stellarstack.blueprints.errors import UnsafePattern
from stellarstack.blueprints.patterns import (
    MATCH_TIMEOUT,
    MAX_PATTERN_LENGTH,
    compile_pattern,
    is_closed_pattern,
    split_delimited,
)
from stellarstack.blueprints.rule_checks import CHECKS, FORMAT_RULES, number

__all__ = [
    "KNOWN_RULES",
    "MATCH_TIMEOUT",
    "MAX_PATTERN_LENGTH",
    "Rule",
    "RuleSet",
    "compile_pattern",
    "parse_rules",
    "split_rule_string",
]

TYPE_RULES = ("string", "integer", "numeric", "boolean")
# Rules that only change how others read a value, or that always hold for an env variable.
MARKER_RULES = frozenset({"required", "nullable", "sometimes", "present", "filled", "bail"})
ARG_COUNTS: dict[str, tuple[int, int | None]] = {
    "in": (1, None),
    "not_in": (1, None),
    "regex": (1, 1),
    "not_regex": (1, 1),
    "min": (1, 1),
    "max": (1, 1),
    "between": (2, 2),
    "size": (1, 1),
    "digits": (1, 1),
    "digits_between": (2, 2),
    "min_digits": (1, 1),
    "max_digits": (1, 1),
    "starts_with": (1, None),
    "ends_with": (1, None),
    "gt": (1, 1),
    "gte": (1, 1),
    "lt": (1, 1),
    "lte": (1, 1),
}
PLAIN_RULES = frozenset(
    {
        *MARKER_RULES,
        *TYPE_RULES,
        *FORMAT_RULES,
    }
)
KNOWN_RULES: frozenset[str] = PLAIN_RULES | frozenset(ARG_COUNTS)
NUMERIC_ARGS = frozenset(
    {"min", "max", "between", "size", "digits", "digits_between", "min_digits", "max_digits"}
    | {"gt", "gte", "lt", "lte"}
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: a name and its arguments (`between:1,30` → `between`, `("1", "30")`)."""

    name: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return self.name
        return f"{self.name}:{','.join(self.args)}"


def split_rule_string(text: str) -> list[str]:
    """Split `a|b|regex:/x|y/` on `|`, keeping a regex whose pattern contains `|` whole."""
    parts = text.split("|")
    out: list[str] = []
    index = 0
    while index < len(parts):
        part = parts[index].strip()
        index += 1
        if part.startswith(("regex:", "not_regex:")):
            body = part.split(":", 1)[1]
            # Join the following pieces until the pattern's closing delimiter is reached.
            while (
                index < len(parts)
                and not is_closed_pattern(body)
                and not _looks_like_rule(parts[index])
            ):
                body += "|" + parts[index]
                part += "|" + parts[index]
                index += 1
        if part:
            out.append(part)
    return out


def _looks_like_rule(text: str) -> bool:
    # A known rule name, or any `name:args` — not a piece of a pattern such as `b)$/`.
    name, sep, _ = text.strip().partition(":")
    return bool(re.fullmatch(r"[a-z_]+", name)) and (name in KNOWN_RULES or bool(sep))


def _parse_one(text: str) -> Rule:
    name, sep, rest = text.partition(":")
    name = name.strip().lower()
    if not sep:
        return Rule(name)
    if name in ("regex", "not_regex"):
        return Rule(name, (rest,))
    if name in ("in", "not_in", "starts_with", "ends_with"):
        row = next(csv.reader([rest], skipinitialspace=True), [])
        return Rule(name, tuple(row))
    return Rule(name, tuple(a.strip() for a in rest.split(",")))


def _problem(rule: Rule) -> str | None:
    """Why a known rule's arguments are unusable, or None when they are fine."""
    if rule.name in PLAIN_RULES:
        return f"{rule.name} takes no arguments" if rule.args else None
    low, high = ARG_COUNTS[rule.name]
    if len(rule.args) < low or (high is not None and len(rule.args) > high):
        return f"{rule.name} needs {low if low == high else f'at least {low}'} argument(s)"
    if rule.name in NUMERIC_ARGS and not all(number(a) is not None for a in rule.args):
        return f"{rule.name} needs numeric arguments"
    if rule.name in ("regex", "not_regex"):
        try:
            compile_pattern(rule.args[0])
        except UnsafePattern as exc:
            return str(exc)
    return None


def parse_rules(spec: str | Sequence[str] | None) -> RuleSet:
    """Parse a rule string (`a|b:1`) or a list of rule strings into a `RuleSet`."""
    if spec is None:
        texts: list[str] = []
    elif isinstance(spec, str):
        texts = split_rule_string(spec)
    else:
        texts = [str(item).strip() for item in spec if str(item).strip()]
    rules: list[Rule] = []
    unknown: list[str] = []
    invalid: list[tuple[str, str]] = []
    for text in texts:
        rule = _parse_one(text)
        if rule.name not in KNOWN_RULES:
            unknown.append(text)
            continue
        problem = _problem(rule)
        if problem is not None:
            invalid.append((text, problem))
            continue
        rules.append(rule)
    return RuleSet(tuple(rules), tuple(unknown), tuple(invalid))


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The parsed rules of one variable, plus what could not be used."""

    rules: tuple[Rule, ...] = ()
    unknown: tuple[str, ...] = ()
    invalid: tuple[tuple[str, str], ...] = ()
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_names", frozenset(r.name for r in self.rules))

    def has(self, name: str) -> bool:
        """Whether the set holds a rule of this name."""
        return name in self._names

    @property
    def required(self) -> bool:
        """Whether an empty value is refused."""
        return self.has("required") and not self.has("nullable")

    @property
    def kind(self) -> str:
        """The value type the rules imply: integer, numeric, boolean or string."""
        for name in ("integer", "numeric", "boolean"):
            if self.has(name):
                return name
        return "string"

    def __str__(self) -> str:
        return "|".join(str(r) for r in self.rules)

    def check(self, value: str) -> list[str]:
        """What is wrong with a value (empty list: valid). Empty values skip all but required."""
        if value == "":
            return ["is required"] if self.required else []
        problems: list[str] = []
        for rule in self.rules:
            message = self._check_rule(rule, value)
            if message:
                problems.append(message)
                if rule.name in TYPE_RULES:
                    break  # Size checks of a mistyped value only add noise.
        return problems

    def _check_rule(self, rule: Rule, value: str) -> str | None:
        checker = CHECKS.get(rule.name)
        return checker(self.kind, rule, value) if checker is not None else None

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema keywords these rules translate to (type, enum, bounds, pattern)."""
        schema: dict[str, Any] = {"type": "number" if self.kind == "numeric" else self.kind}
        for rule in self.rules:
            _schema_rule(schema, self.kind, rule)
        return schema


def _bound(text: str, kind: str) -> int | float:
    value = float(text)
    return int(value) if kind != "numeric" and value.is_integer() else value


def _schema_rule(schema: dict[str, Any], kind: str, rule: Rule) -> None:
    numeric = kind in ("integer", "numeric")
    low_key, high_key = ("minimum", "maximum") if numeric else ("minLength", "maxLength")
    bounds = [_bound(a, kind) for a in rule.args] if rule.name in NUMERIC_ARGS else []
    formats = {"url": "uri", "email": "email", "uuid": "uuid", "ipv4": "ipv4", "ipv6": "ipv6"}
    if rule.name == "in":
        schema["enum"] = list(rule.args)
    elif rule.name == "min":
        schema[low_key] = bounds[0]
    elif rule.name == "max":
        schema[high_key] = bounds[0]
    elif rule.name == "between":
        schema[low_key], schema[high_key] = bounds[0], bounds[1]
    elif rule.name == "size":
        schema[low_key] = schema[high_key] = bounds[0]
    elif rule.name == "regex":
        body, flags = split_delimited(rule.args[0])
        if not flags:
            schema["pattern"] = body
    elif rule.name in formats:
        schema["format"] = formats[rule.name]
