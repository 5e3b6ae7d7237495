"""Blueprints: the YAML format of a game template, its variables, loader and egg importer.

- `model`        the pydantic models of the format (`Blueprint.from_yaml`, `json_schema`)
- `rules`        Laravel-style rule strings → `RuleSet` (checks in `rule_checks`, regexes in
                 `patterns`: bounded, ReDoS shapes refused, matches time-limited)
- `variables`    a user's values checked against a blueprint → `resolve` / `validate`
- `startup`      rendering the startup command from variables, literally and safely
- `loader`       the shipped catalogue (`catalog/*.yaml`) and operator directories
- `eggs`         Pterodactyl PTDL_v1/v2 and Pelican PLCN_v3 eggs → a blueprint and an
                 `ImportReport` (`egg_config` maps `config.*`, `egg_report` tracks every field)
- `sync`         fetch blueprints from a URL or a git repository, public addresses only
"""

from __future__ import annotations

from stellarstack.blueprints.errors import (
    BlueprintError,
    EggImportError,
    InvalidBlueprint,
    SyncRefused,
    UnsafePattern,
)
from stellarstack.blueprints.model import Blueprint

__all__ = [
    "Blueprint",
    "BlueprintError",
    "EggImportError",
    "InvalidBlueprint",
    "SyncRefused",
    "UnsafePattern",
]
