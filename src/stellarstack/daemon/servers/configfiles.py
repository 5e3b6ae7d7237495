"""Config-file edits of a server (properties, yaml, json, ini), confined to its directory.

Keys of `ConfigEdit.set` address nested values with dots for yaml and json
(`server.max-players`); for ini the part before the last dot is the section
(`/Script/Engine.GameSession.MaxPlayers` → section `/Script/Engine.GameSession`), a key
without a dot goes before the first section. A missing file is created. Lines and comments
the edit does not touch are kept for properties and ini; yaml and json are re-serialised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.servers.confine import read_inside, write_inside
from stellarstack.protocol.servers import ConfigEdit

__all__ = ["apply_edit", "apply_edits", "edit_ini", "edit_properties", "edit_tree"]

Value = str | int | float | bool

# Characters that would let a key end its own line or entry and start another.
_KEY_BREAKERS = {
    "properties": "\n\r\0=:",
    "ini": "\n\r\0=[]",
    "json": "\0",
    "yaml": "\0",
}


def _scalar(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\n", " ").replace("\r", " ")


def edit_properties(text: str, values: dict[str, Value]) -> str:
    """Set `key=value` lines of a Java .properties file; keep the others as they are."""
    left = dict(values)
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        key = stripped.split("=", 1)[0].split(":", 1)[0].strip()
        if stripped and stripped[0] not in "#!" and key in left:
            out.append(f"{key}={_scalar(left.pop(key))}")
        else:
            out.append(line)
    out += [f"{key}={_scalar(value)}" for key, value in left.items()]
    return "\n".join(out) + "\n"


def edit_ini(text: str, values: dict[str, Value]) -> str:
    """Set keys of an ini file (`section.key`); missing sections and keys are appended."""
    wanted: dict[str, dict[str, Value]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.rpartition(".")
        wanted.setdefault(section, {})[key] = value
    out: list[str] = []
    section = ""

    def close_section() -> None:
        for key, value in wanted.pop(section, {}).items():
            out.append(f"{key}={_scalar(value)}")

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            close_section()
            section = stripped[1:-1].strip()
            out.append(line)
            continue
        key = stripped.split("=", 1)[0].strip()
        pending = wanted.get(section, {})
        if stripped and stripped[0] not in "#;" and "=" in stripped and key in pending:
            out.append(f"{key}={_scalar(pending.pop(key))}")
        else:
            out.append(line)
    close_section()
    for name, keys in wanted.items():
        out.append(f"[{name}]")
        out += [f"{key}={_scalar(value)}" for key, value in keys.items()]
    return "\n".join(out) + "\n"


def edit_tree(tree: object, values: dict[str, Value], *, path: str) -> dict[str, Any]:
    """Set dotted keys in a parsed yaml/json document (a mapping at the top)."""
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise CommandFailedError(f"{path}: the document is not a mapping; cannot set keys in it")
    for dotted, value in values.items():
        node: dict[str, Any] = tree
        *parents, last = dotted.split(".")
        for name in parents:
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        node[last] = value
    return tree


def _check_keys(edit: ConfigEdit) -> None:
    """Refuse keys that would write more than their own entry, or name nothing."""
    for key in edit.set:
        names = key.split(".") if edit.parser in ("yaml", "json") else [key.rpartition(".")[2]]
        if set(key) & set(_KEY_BREAKERS[edit.parser]) or not all(n.strip() for n in names):
            raise CommandFailedError(
                f"{edit.path}: config key {key!r} is empty or contains a character that "
                "would start another entry (line break, '=', ':' or a section bracket)"
            )


def apply_edit(root: Path, edit: ConfigEdit) -> None:
    """Apply one edit to a file under `root` (created if missing, never through a symlink)."""
    _check_keys(edit)
    text = read_inside(root, edit.path) or ""
    if edit.parser == "properties":
        result = edit_properties(text, edit.set)
    elif edit.parser == "ini":
        result = edit_ini(text, edit.set)
    elif edit.parser == "json":
        try:
            tree = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            raise CommandFailedError(f"{edit.path} is not valid JSON: {exc}") from exc
        result = json.dumps(edit_tree(tree, edit.set, path=edit.path), indent=2) + "\n"
    else:
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CommandFailedError(f"{edit.path} is not valid YAML: {exc}") from exc
        result = yaml.safe_dump(edit_tree(tree, edit.set, path=edit.path), sort_keys=False)
    write_inside(root, edit.path, result)


def apply_edits(root: Path, edits: list[ConfigEdit]) -> None:
    """Apply every edit in order (blocking: run it in a thread)."""
    for edit in edits:
        try:
            apply_edit(root, edit)
        except OSError as exc:
            raise CommandFailedError(f"cannot edit {edit.path}: {exc.strerror or exc}") from exc
