"""Regular expressions from rules (`regex:/…/flags`), compiled so they cannot stall the panel.

A pattern with nested unbounded quantifiers can backtrack for minutes on a short input (ReDoS).
Patterns are bounded in length, refused when a repeated group itself repeats without bound,
and every match runs with a time limit (`MATCH_TIMEOUT`, enforced by the `regex` module).
"""

from __future__ import annotations

import re
from functools import lru_cache

import regex

from stellarstack.blueprints.errors import UnsafePattern

__all__ = [
    "MATCH_TIMEOUT",
    "MAX_PATTERN_LENGTH",
    "compile_pattern",
    "is_closed_pattern",
    "split_delimited",
]

MAX_PATTERN_LENGTH = 512
# Seconds one regex match may take; a value that needs longer is refused, not waited for.
MATCH_TIMEOUT = 0.05
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}


def is_closed_pattern(body: str) -> bool:
    """Whether `/…/flags` text ends with its closing delimiter (so `|` splitting may stop)."""
    if len(body) < 2:
        return False
    delimiter = body[0]
    closing = {"(": ")", "[": "]", "{": "}", "<": ">"}.get(delimiter, delimiter)
    stripped = body.rstrip("imsxuUDA")
    return (
        len(stripped) >= 2 and stripped.endswith(closing) and not stripped.endswith("\\" + closing)
    )


def split_delimited(pattern: str) -> tuple[str, str]:
    """`/body/flags` → (body, flags); refuses text without delimiters."""
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
    body, flag_text = split_delimited(pattern)
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
