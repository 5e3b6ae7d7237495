"""Laravel-style validation rules (`required|string|max:20`) as rule objects that check values.

Pterodactyl and Pelican eggs describe their variables with Laravel rule strings; our blueprints
use the same vocabulary so eggs translate one to one. `parse_rules` turns a rule string (or a
list of rule strings) into a `RuleSet`; rules it does not know are kept in `RuleSet.unknown`
(our own YAML refuses them, the egg importer reports them). `RuleSet.check(value)` lists what
is wrong with one value, in words a person can act on.

Regular expressions (`regex:/…/`) are the dangerous part: a pattern with nested unbounded
quantifiers can backtrack for minutes on a short input (ReDoS). Patterns are bounded in length,
refused when they nest unbounded quantifiers, and every match runs with a time limit.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import regex

from stellarstack.blueprints.errors import UnsafePattern

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

MAX_PATTERN_LENGTH = 512
# Seconds one regex match may take; a value that needs longer is refused, not waited for.
MATCH_TIMEOUT = 0.05
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
        "alpha",
        "alpha_num",
        "alpha_dash",
        "url",
        "active_url",
        "ip",
        "ipv4",
        "ipv6",
        "email",
        "uuid",
        "json",
        "lowercase",
        "uppercase",
        "accepted",
        "declined",
    }
)
KNOWN_RULES: frozenset[str] = PLAIN_RULES | frozenset(ARG_COUNTS)
NUMERIC_ARGS = frozenset(
    {"min", "max", "between", "size", "digits", "digits_between", "min_digits", "max_digits"}
    | {"gt", "gte", "lt", "lte"}
)
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}
_ALPHA = regex.compile(r"^[\p{L}\p{M}]+$")
_ALPHA_NUM = regex.compile(r"^[\p{L}\p{M}\p{N}]+$")
_ALPHA_DASH = regex.compile(r"^[\p{L}\p{M}\p{N}_-]+$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DIGITS = re.compile(r"^\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})


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
                and not _is_closed_pattern(body)
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


def _is_closed_pattern(body: str) -> bool:
    if len(body) < 2:
        return False
    delimiter = body[0]
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(delimiter, delimiter)
    stripped = body.rstrip("imsxuUDA")
    return (
        len(stripped) >= 2 and stripped.endswith(closing) and not stripped.endswith("\\" + closing)
    )


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
    if rule.name in NUMERIC_ARGS and not all(_number(a) is not None for a in rule.args):
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


def _split_delimited(pattern: str) -> tuple[str, str]:
    if len(pattern) < 2 or pattern[0].isalnum() or pattern[0] in "\\ ":
        raise UnsafePattern("a regex rule must be written /pattern/ (with delimiters)")
    delimiter = pattern[0]
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(delimiter, delimiter)
    end = pattern.rfind(closing)
    if end <= 0:
        raise UnsafePattern(f"the regex has no closing {closing!r} delimiter")
    return pattern[1:end], pattern[end + 1 :]


def _nested_quantifier(body: str) -> bool:
    """Whether a group holding an unbounded quantifier is itself repeated without bound.

    `(a+)+`, `(\\w*)*`, `(?:x|y+){2,}` backtrack exponentially on a near-miss; this is the
    classic ReDoS shape. A conservative scan: escapes and character classes are skipped.
    """
    stack: list[bool] = [False]
    index = 0
    closed_unbounded = False
    while index < len(body):
        char = body[index]
        if char == "\\":
            index += 2
            closed_unbounded = False
            continue
        if char == "[":
            index = _skip_class(body, index)
            closed_unbounded = False
            continue
        unbounded = _unbounded_at(body, index)
        if unbounded:
            if closed_unbounded:
                return True
            stack[-1] = True
        if char == "(":
            stack.append(False)
            closed_unbounded = False
        elif char == ")" and len(stack) > 1:
            inner = stack.pop()
            stack[-1] = stack[-1] or inner
            closed_unbounded = inner
            index += 1
            continue
        else:
            closed_unbounded = False
        index += 1
    return False


def _unbounded_at(body: str, index: int) -> bool:
    char = body[index]
    if char in "*+":
        return True
    if char == "{":
        match = re.match(r"\{(\d*),\}", body[index:])
        return match is not None
    return False


def _skip_class(body: str, index: int) -> int:
    index += 1
    if index < len(body) and body[index] == "^":
        index += 1
    if index < len(body) and body[index] == "]":
        index += 1
    while index < len(body) and body[index] != "]":
        index += 2 if body[index] == "\\" else 1
    return index + 1


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a Laravel/PCRE `/pattern/flags` safely, or raise `UnsafePattern` saying why."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePattern(f"the regex is longer than {MAX_PATTERN_LENGTH} characters")
    body, flag_text = _split_delimited(pattern)
    flags = 0
    for flag in flag_text:
        if flag == "u":
            continue  # Unicode matching is the default here.
        if flag not in _FLAGS:
            raise UnsafePattern(f"the regex flag {flag!r} is not supported")
        flags |= _FLAGS[flag]
    if _nested_quantifier(body):
        raise UnsafePattern(
            "the regex repeats a group that itself repeats without bound (like (a+)+), "
            "which can take minutes to check; rewrite it without nested repetition"
        )
    try:
        return regex.compile(body, flags)
    except (regex.error, ValueError, OverflowError) as exc:
        raise UnsafePattern(f"the regex does not compile: {exc}") from exc


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


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

    def _measure(self, value: str) -> tuple[float | None, str]:
        if self.kind in ("integer", "numeric"):
            return _number(value), ""
        return float(len(value)), " character"

    def _check_rule(self, rule: Rule, value: str) -> str | None:
        checker = _CHECKS.get(rule.name)
        if checker is not None:
            return checker(self, rule, value)
        return None

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
        body, flags = _split_delimited(rule.args[0])
        if not flags:
            schema["pattern"] = body
    elif rule.name in formats:
        schema["format"] = formats[rule.name]


def _check_type(rules: RuleSet, rule: Rule, value: str) -> str | None:
    if rule.name == "integer" and not _INTEGER.match(value):
        return "must be a whole number"
    if rule.name == "numeric" and _number(value) is None:
        return "must be a number"
    if rule.name == "boolean" and value.lower() not in _TRUE | _FALSE:
        return "must be true or false (1 or 0)"
    return None


def _check_size(rules: RuleSet, rule: Rule, value: str) -> str | None:
    measured, unit = rules._measure(value)
    if measured is None:
        return "must be a number"
    bounds = [float(a) for a in rule.args]
    word = unit.strip() or None
    if rule.name == "min" and measured < bounds[0]:
        return f"must be at least {_plural(bounds[0], word) if word else f'{bounds[0]:g}'}"
    if rule.name == "max" and measured > bounds[0]:
        return f"must be at most {_plural(bounds[0], word) if word else f'{bounds[0]:g}'}"
    if rule.name == "between" and not bounds[0] <= measured <= bounds[1]:
        return f"must be between {bounds[0]:g} and {bounds[1]:g}{unit and unit + 's'}"
    if rule.name == "size" and measured != bounds[0]:
        return f"must be exactly {_plural(bounds[0], word) if word else f'{bounds[0]:g}'}"
    return None


def _check_compare(rules: RuleSet, rule: Rule, value: str) -> str | None:
    measured, _ = rules._measure(value)
    bound = float(rule.args[0])
    if measured is None:
        return "must be a number"
    ok = {
        "gt": measured > bound,
        "gte": measured >= bound,
        "lt": measured < bound,
        "lte": measured <= bound,
    }[rule.name]
    words = {"gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most"}
    return None if ok else f"must be {words[rule.name]} {bound:g}"


def _check_digits(rules: RuleSet, rule: Rule, value: str) -> str | None:
    if not _DIGITS.match(value):
        return "must contain only digits"
    count = len(value)
    bounds = [int(float(a)) for a in rule.args]
    if rule.name == "digits" and count != bounds[0]:
        return f"must have exactly {bounds[0]} digits"
    if rule.name == "digits_between" and not bounds[0] <= count <= bounds[1]:
        return f"must have between {bounds[0]} and {bounds[1]} digits"
    if rule.name == "min_digits" and count < bounds[0]:
        return f"must have at least {bounds[0]} digits"
    if rule.name == "max_digits" and count > bounds[0]:
        return f"must have at most {bounds[0]} digits"
    return None


def _check_choice(rules: RuleSet, rule: Rule, value: str) -> str | None:
    if rule.name == "in" and value not in rule.args:
        return f"must be one of: {', '.join(rule.args)}"
    if rule.name == "not_in" and value in rule.args:
        return f"must not be {value!r}"
    if rule.name == "starts_with" and not value.startswith(rule.args):
        return f"must start with {' or '.join(rule.args)}"
    if rule.name == "ends_with" and not value.endswith(rule.args):
        return f"must end with {' or '.join(rule.args)}"
    return None


def _check_regex(rules: RuleSet, rule: Rule, value: str) -> str | None:
    pattern = compile_pattern(rule.args[0])
    try:
        found = pattern.search(value, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return "could not be checked in time against its pattern; use a simpler value"
    if rule.name == "regex" and not found:
        return "has an invalid format"
    if rule.name == "not_regex" and found:
        return "has a format that is not allowed"
    return None


def _valid_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc) and parts.scheme.isascii() and " " not in value


def _valid_ip(value: str, version: int | None) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return version is None or address.version == version


def _valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _valid_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _check_format(rules: RuleSet, rule: Rule, value: str) -> str | None:
    checks: dict[str, tuple[bool, str]] = {
        "alpha": (bool(_ALPHA.match(value)), "may contain only letters"),
        "alpha_num": (bool(_ALPHA_NUM.match(value)), "may contain only letters and digits"),
        "alpha_dash": (
            bool(_ALPHA_DASH.match(value)),
            "may contain only letters, digits, dashes and underscores",
        ),
        "url": (_valid_url(value), "must be a URL"),
        "active_url": (_valid_url(value), "must be a URL"),
        "ip": (_valid_ip(value, None), "must be an IP address"),
        "ipv4": (_valid_ip(value, 4), "must be an IPv4 address"),
        "ipv6": (_valid_ip(value, 6), "must be an IPv6 address"),
        "email": (bool(_EMAIL.match(value)), "must be an email address"),
        "uuid": (_valid_uuid(value), "must be a UUID"),
        "json": (_valid_json(value), "must be valid JSON"),
        "lowercase": (value == value.lower(), "must be lowercase"),
        "uppercase": (value == value.upper(), "must be uppercase"),
        "accepted": (value.lower() in {"yes", "on", "1", "true"}, "must be accepted"),
        "declined": (value.lower() in {"no", "off", "0", "false"}, "must be declined"),
    }
    ok, message = checks[rule.name]
    return None if ok else message


_CHECKS = {
    **dict.fromkeys(("integer", "numeric", "boolean"), _check_type),
    **dict.fromkeys(("min", "max", "between", "size"), _check_size),
    **dict.fromkeys(("gt", "gte", "lt", "lte"), _check_compare),
    **dict.fromkeys(("digits", "digits_between", "min_digits", "max_digits"), _check_digits),
    **dict.fromkeys(("in", "not_in", "starts_with", "ends_with"), _check_choice),
    **dict.fromkeys(("regex", "not_regex"), _check_regex),
    **dict.fromkeys(
        (
            "alpha",
            "alpha_num",
            "alpha_dash",
            "url",
            "active_url",
            "ip",
            "ipv4",
            "ipv6",
            "email",
            "uuid",
            "json",
            "lowercase",
            "uppercase",
            "accepted",
            "declined",
        ),
        _check_format,
    ),
}
