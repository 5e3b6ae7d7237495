"""What an egg import did: every field of the egg is either mapped or reported, never dropped.

The importer marks the paths it used (`EggFields.take`); at the end every leaf of the egg that
holds a value and was not taken becomes an `Unmapped` entry with a reason, so an operator sees
exactly what StellarStack does not carry over (custom log paths, XML config edits…).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EggFields", "ImportReport", "Unmapped", "path_of"]

PREVIEW_CHARS = 160
# Why well-known egg fields are not carried over (anything else: "no StellarStack equivalent").
KNOWN_REASONS = {
    "_comment": "the export banner of the egg; it carries no setting",
    "config.logs": "custom log files are not read; the console log is kept by the daemon",
    "meta": "format metadata",
}


def path_of(parent: str, key: object) -> str:
    """`parent.key`, or `parent["key.with.dots"]` / `parent[3]` when a dot would mislead."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    text = str(key)
    if "." in text or " " in text or not text:
        return f"{parent}[{json.dumps(text)}]"
    return f"{parent}.{text}" if parent else text


def _preview(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _is_empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


@dataclass(frozen=True, slots=True)
class Unmapped:
    """A field of the egg that the blueprint does not carry, and why."""

    path: str
    reason: str
    value: str = ""


@dataclass
class ImportReport:
    """The outcome of one egg import."""

    origin: str
    format: str
    mapped: list[str] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many fields were mapped and unmapped, and how many warnings there are."""
        return {
            "mapped": len(self.mapped),
            "unmapped": len(self.unmapped),
            "warnings": len(self.warnings),
        }

    def to_data(self) -> dict[str, Any]:
        """The report as JSON-ready data (stored with the blueprint, shown to the operator)."""
        return {
            "origin": self.origin,
            "format": self.format,
            "counts": self.counts,
            "mapped": list(self.mapped),
            "unmapped": [
                {"path": u.path, "reason": u.reason, "value": u.value} for u in self.unmapped
            ],
            "warnings": list(self.warnings),
        }


class EggFields:
    """The egg's data plus the paths the importer has used or explained."""

    def __init__(self, data: dict[str, Any], report: ImportReport) -> None:
        self.data = data
        self.report = report
        self._taken: set[str] = set()
        self._explained: dict[str, str] = {}

    def take(self, path: str) -> None:
        """Mark a path (and everything under it) as carried over."""
        self._taken.add(path)
        self.report.mapped.append(path)

    def explain(self, path: str, reason: str, value: object = None) -> None:
        """Report a path as not carried over, with the reason."""
        self._explained[path] = reason
        self.report.unmapped.append(Unmapped(path, reason, _preview(value) if value else ""))

    def _covered(self, path: str) -> bool:
        return any(_under(path, done) for done in (*self._taken, *self._explained))

    def report_leftovers(self, tree: object, parent: str = "") -> None:
        """Report every non-empty leaf nobody took or explained (call once, at the end)."""
        if parent and self._covered(parent):
            return
        if isinstance(tree, dict) and tree:
            for key, value in tree.items():
                self.report_leftovers(value, path_of(parent, key))
            return
        if isinstance(tree, list) and tree and any(isinstance(v, dict | list) for v in tree):
            for index, value in enumerate(tree):
                self.report_leftovers(value, path_of(parent, index))
            return
        if _is_empty(tree):
            return
        reason = next((why for key, why in KNOWN_REASONS.items() if _under(parent, key)), None)
        self.report.unmapped.append(
            Unmapped(parent, reason or "StellarStack has no equivalent", _preview(tree))
        )
