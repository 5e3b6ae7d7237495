"""Errors of the blueprints library (the panel maps them to 4xx responses).

BlueprintError
├── InvalidBlueprint   a document does not describe a valid blueprint (lists the problems)
├── UnsafePattern      a regex rule was refused (too long, or prone to catastrophic backtracking)
├── EggImportError     an egg cannot be read at all (unknown format, broken JSON/YAML)
└── SyncRefused        a sync source was refused (scheme, private address, size, git failure)
"""

from __future__ import annotations

__all__ = ["BlueprintError", "EggImportError", "InvalidBlueprint", "SyncRefused", "UnsafePattern"]


class BlueprintError(Exception):
    """Base of every error the blueprints library raises."""


class InvalidBlueprint(BlueprintError):
    """A document is not a valid blueprint; `problems` holds (field path, message) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class UnsafePattern(BlueprintError):
    """A regular expression was refused before it could be used."""


class EggImportError(BlueprintError):
    """An egg could not be read (not JSON/YAML, not an egg, unknown format version)."""


class SyncRefused(BlueprintError):
    """A sync source was refused or could not be fetched."""
