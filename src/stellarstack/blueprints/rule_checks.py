"""The check of each rule against one value: `CHECKS[rule.name](kind, rule, value)`.

`kind` is the value type the whole rule set implies (integer, numeric, boolean, string): sizes
are counted in characters for text and compared by value for numbers, as Laravel does.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import regex

from stellarstack.blueprints.patterns import MATCH_TIMEOUT, compile_pattern

if TYPE_CHECKING:
    from stellarstack.blueprints.rules import Rule

__all__ = ["CHECKS", "FORMAT_RULES", "measure", "number"]

_ALPHA = regex.compile(r"^[\p{L}\p{M}]+$")
_ALPHA_NUM = regex.compile(r"^[\p{L}\p{M}\p{N}]+$")
_ALPHA_DASH = regex.compile(r"^[\p{L}\p{M}\p{N}_-]+$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DIGITS = re.compile(r"^\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})


def number(text: str) -> float | None:
    """The finite number a text spells, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def measure(kind: str, value: str) -> tuple[float | None, str]:
    """A value's size for min/max/between: its number, or its length in characters."""
    if kind in ("integer", "numeric"):
        return number(value), ""
    return float(len(value)), " character"


def _check_type(kind: str, rule: Rule, value: str) -> str | None:
    if rule.name == "integer" and not _INTEGER.match(value):
        return "must be a whole number"
    if rule.name == "numeric" and number(value) is None:
        return "must be a number"
    if rule.name == "boolean" and value.lower() not in _TRUE | _FALSE:
        return "must be true or false (1 or 0)"
    return None


def _check_size(kind: str, rule: Rule, value: str) -> str | None:
    measured, unit = measure(kind, value)
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


def _check_compare(kind: str, rule: Rule, value: str) -> str | None:
    measured, _ = measure(kind, value)
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


def _check_digits(kind: str, rule: Rule, value: str) -> str | None:
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


def _check_choice(kind: str, rule: Rule, value: str) -> str | None:
    if rule.name == "in" and value not in rule.args:
        return f"must be one of: {', '.join(rule.args)}"
    if rule.name == "not_in" and value in rule.args:
        return f"must not be {value!r}"
    if rule.name == "starts_with" and not value.startswith(rule.args):
        return f"must start with {' or '.join(rule.args)}"
    if rule.name == "ends_with" and not value.endswith(rule.args):
        return f"must end with {' or '.join(rule.args)}"
    return None


def _check_regex(kind: str, rule: Rule, value: str) -> str | None:
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


def _check_format(kind: str, rule: Rule, value: str) -> str | None:
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


FORMAT_RULES: tuple[str, ...] = (
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
)
"""Rules without arguments that check a value's format."""

CHECKS: dict[str, Callable[[str, Rule, str], str | None]] = {
    **dict.fromkeys(("integer", "numeric", "boolean"), _check_type),
    **dict.fromkeys(("min", "max", "between", "size"), _check_size),
    **dict.fromkeys(("gt", "gte", "lt", "lte"), _check_compare),
    **dict.fromkeys(("digits", "digits_between", "min_digits", "max_digits"), _check_digits),
    **dict.fromkeys(("in", "not_in", "starts_with", "ends_with"), _check_choice),
    **dict.fromkeys(("regex", "not_regex"), _check_regex),
    **dict.fromkeys(
        FORMAT_RULES,
        _check_format,
    ),
}
