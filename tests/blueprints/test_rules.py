"""Laravel-style rules: the translation table, the checks, and refusing dangerous regexes."""

from __future__ import annotations

import time

import pytest

from stellarstack.blueprints.errors import UnsafePattern
from stellarstack.blueprints.rules import Rule, compile_pattern, parse_rules, split_rule_string


@pytest.mark.parametrize(
    ("spec", "rules"),
    [
        ("required|string|max:20", [Rule("required"), Rule("string"), Rule("max", ("20",))]),
        (
            "nullable|integer|between:1025,65535",
            [Rule("nullable"), Rule("integer"), Rule("between", ("1025", "65535"))],
        ),
        ("in:730", [Rule("in", ("730",))]),
        ('in:"a,b",c', [Rule("in", ("a,b", "c"))]),
        (["required", "regex:/^(a|b)$/"], [Rule("required"), Rule("regex", ("/^(a|b)$/",))]),
        (
            "required|regex:/^(a|b)$/|max:3",
            [Rule("required"), Rule("regex", ("/^(a|b)$/",)), Rule("max", ("3",))],
        ),
        ("digits_between:1,3", [Rule("digits_between", ("1", "3"))]),
        ("alpha_dash|size:32", [Rule("alpha_dash"), Rule("size", ("32",))]),
    ],
)
def test_rule_strings_translate_to_rule_objects(spec: object, rules: list[Rule]) -> None:
    parsed = parse_rules(spec)  # type: ignore[arg-type]
    assert list(parsed.rules) == rules
    assert not parsed.unknown and not parsed.invalid


def test_regex_containing_a_pipe_stays_whole_when_splitting() -> None:
    assert split_rule_string("required|regex:/^(x|y|z)$/i|string") == [
        "required",
        "regex:/^(x|y|z)$/i",
        "string",
    ]


@pytest.mark.parametrize(
    ("spec", "value", "problem"),
    [
        ("required|string", "", "is required"),
        ("nullable|string|max:5", "", None),
        ("string|max:5", "abcdef", "must be at most 5 characters"),
        ("string|between:3,15", "ab", "must be between 3 and 15 characters"),
        ("numeric|between:1,64", "65", "must be between 1 and 64"),
        ("numeric|between:1,64", "64", None),
        ("integer", "1.5", "must be a whole number"),
        ("integer|between:1025,65535", "80", "must be between 1025 and 65535"),
        ("numeric", "nan", "must be a number"),
        ("boolean", "maybe", "must be true or false (1 or 0)"),
        ("boolean", "1", None),
        ("in:730", "440", "must be one of: 730"),
        ("alpha_dash", "de_dust2", None),
        ("alpha_dash", "de dust", "may contain only letters, digits, dashes and underscores"),
        ("alpha_num|size:32", "a" * 31, "must be exactly 32 characters"),
        ("digits_between:1,3", "1234", "must have between 1 and 3 digits"),
        ("regex:/^([\\w\\d._-]+)(\\.jar)$/", "server.jar", None),
        ("regex:/^([\\w\\d._-]+)(\\.jar)$/", "server.zip", "has an invalid format"),
        ("url", "https://example.com/x", None),
        ("url", "not a url", "must be a URL"),
        ("ip", "10.0.0.1", None),
        ("ipv6", "10.0.0.1", "must be an IPv6 address"),
        ("starts_with:de_,cs_", "aim_map", "must start with de_ or cs_"),
    ],
)
def test_rules_check_values(spec: str, value: str, problem: str | None) -> None:
    problems = parse_rules(spec).check(value)
    assert problems == ([problem] if problem else [])


def test_unknown_and_unusable_rules_are_reported_not_applied() -> None:
    parsed = parse_rules("required|confirmed|max:abc|regex:(a+)+|exists:users,id")
    assert parsed.unknown == ("confirmed", "exists:users,id")
    assert [text for text, _ in parsed.invalid] == ["max:abc", "regex:(a+)+"]
    assert parsed.check("x") == []


@pytest.mark.parametrize(
    "pattern",
    ["/(a+)+$/", "/^(\\w*)*x/", "/(?:ab|c+){2,}/", "/((x+))+/", "/" + "a" * 600 + "/"],
)
def test_catastrophic_regexes_are_refused(pattern: str) -> None:
    with pytest.raises(UnsafePattern):
        compile_pattern(pattern)


@pytest.mark.parametrize("pattern", ["/^[a-z]+$/i", "/^(a|b)+$/", "#^\\d{1,3}$#", "/^(ab)+c$/"])
def test_ordinary_regexes_compile(pattern: str) -> None:
    compile_pattern(pattern)


def test_regex_without_delimiters_or_with_unknown_flags_is_refused() -> None:
    with pytest.raises(UnsafePattern, match="delimiter"):
        compile_pattern("^abc$")
    with pytest.raises(UnsafePattern, match="flag"):
        compile_pattern("/abc/e")


def test_a_slow_match_is_cut_short_and_refused() -> None:
    # Alternation overlap slips past the static check; the time limit still bounds it.
    rules = parse_rules("regex:/^(a|aa)*$/")
    assert not rules.invalid
    started = time.monotonic()
    problems = rules.check("a" * 60 + "!")
    assert time.monotonic() - started < 2
    assert problems == ["could not be checked in time against its pattern; use a simpler value"]


def test_json_schema_of_rules() -> None:
    assert parse_rules("required|integer|between:1,64").json_schema() == {
        "type": "integer",
        "minimum": 1,
        "maximum": 64,
    }
    assert parse_rules("string|max:20|in:a,b").json_schema() == {
        "type": "string",
        "maxLength": 20,
        "enum": ["a", "b"],
    }
