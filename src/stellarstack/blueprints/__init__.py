"""Blueprints: the YAML format of a game template, its variables, loader and egg importer.

- `model`      the pydantic models of the format (`Blueprint.from_yaml`, `json_schema`)
- `variables`  Laravel-style rule strings → rule objects → `validate(values)`
- `startup`    rendering the startup command from variables, literally and safely
- `loader`     the shipped catalogue and operator directories
- `eggs`       Pterodactyl PTDL_v1/v2 and Pelican PLCN_v3 eggs → a blueprint and a report
- `sync`       fetch blueprints from a URL or a git repository
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
