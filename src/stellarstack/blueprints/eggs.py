"""Importing Pterodactyl (PTDL_v1, PTDL_v2) and Pelican (PLCN_v3) eggs as blueprints.

An egg is the Pterodactyl family's game template. The importer maps what has a StellarStack
equivalent: name, description, docker images, the startup command (its `{{server.…}}`
placeholders rewritten to our variables), variables with their Laravel rules, the install
script with its container and entrypoint, the `done` string(s) as a log ready check, the stop
command or `^C` signal, and config-file edits for the properties/yaml/json/ini parsers. Every
other field lands in the `ImportReport` with a reason (see `egg_report`).

Eggs declare no ports (Pterodactyl maps the server's allocation onto the same port inside the
container), so the blueprint gets a primary port on TCP and UDP that follows the allocation.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from stellarstack.blueprints.egg_config import (
    config_files,
    normalize,
    ready_check,
    rewrite_placeholders,
    stop_spec,
)
from stellarstack.blueprints.egg_report import EggFields, ImportReport, path_of
from stellarstack.blueprints.errors import EggImportError, InvalidBlueprint
from stellarstack.blueprints.model import (
    BUILTIN_VARIABLES,
    ENV_KEY,
    IMAGE,
    MAX_ICON_CHARS,
    SAFE_LOADER,
    Blueprint,
    referenced,
)
from stellarstack.blueprints.rules import parse_rules

__all__ = [
    "EGG_FORMATS",
    "EGG_PORT",
    "ImportReport",
    "detect_egg_format",
    "import_egg",
    "import_egg_text",
    "parse_document",
]

EGG_FORMATS = ("PTDL_v1", "PTDL_v2", "PLCN_v3")
# The port the primary allocation is assumed to use until a server gets its own.
EGG_PORT = 25565
MAX_DOCUMENT_CHARS = 1024 * 1024
FIELD_TYPES = {"text": "text", "number": "number", "boolean": "boolean", "select": "select"}


def parse_document(text: str, *, origin: str) -> Any:
    """Parse JSON or YAML text (JSON first when it looks like JSON); refuse huge documents."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise InvalidBlueprint(f"{origin} is larger than {MAX_DOCUMENT_CHARS // 1024} KiB")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidBlueprint(f"{origin} is not valid JSON: {exc}") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise InvalidBlueprint(f"{origin} is not valid YAML: {exc}") from None


def detect_egg_format(data: object) -> str | None:
    """The egg format (`PTDL_v2`…) of parsed data, or None when it is not an egg."""
    if not isinstance(data, dict):
        return None
    meta = data.get("meta")
    version = meta.get("version") if isinstance(meta, dict) else None
    return version if version in EGG_FORMATS else None


def slugify(name: str) -> str:
    """A blueprint slug from an egg's name (`Vanilla Minecraft` → `vanilla-minecraft`)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:120].strip("-")
    return slug if len(slug) >= 2 else f"egg-{slug or 'imported'}"


def import_egg_text(text: str, *, origin: str = "egg") -> tuple[Blueprint, ImportReport]:
    """Import an egg from JSON or YAML text."""
    return import_egg(parse_document(text, origin=origin), origin=origin)


def import_egg(
    data: object, *, origin: str = "egg", slug: str | None = None
) -> tuple[Blueprint, ImportReport]:
    """Map an egg to a blueprint; `EggImportError` when it is not an egg at all."""
    egg_format = detect_egg_format(data)
    if egg_format is None or not isinstance(data, dict):
        raise EggImportError(
            f"{origin} is not an egg: meta.version must be one of {', '.join(EGG_FORMATS)}"
        )
    data = normalize(data)
    report = ImportReport(origin=origin, format=egg_format)
    fields = EggFields(data, report)
    name = _text(data.get("name")) or "Imported egg"
    fields.take("name")
    fields.take("description")
    fields.take("meta.version")
    variables = _variables(fields)
    declared = {v["env"] for v in variables}
    known = declared | set(BUILTIN_VARIABLES)
    definition: dict[str, Any] = {
        "slug": slug or slugify(name),
        "name": name[:255],
        "description": _text(data.get("description"))[:16384],
        "category": _category(fields, name),
        "docker": _images(fields),
        "ports": [
            {"name": "game", "port": EGG_PORT, "protocol": "tcp", "description": "Allocation"},
            {"name": "game-udp", "port": EGG_PORT, "protocol": "udp", "description": "Allocation"},
        ],
        "variables": variables,
        "volumes": [{"path": "/home/container", "description": "Server files"}],
        "startup": {
            "command": _startup_command(fields, known),
            "stop": stop_spec(fields),
            "ready": ready_check(fields),
        },
        "config_files": config_files(fields, known),
        "source": _source(fields, egg_format, origin),
        **_extras(fields),
    }
    if definition["startup"]["ready"] is None:
        del definition["startup"]["ready"]
    install = _install(fields)
    if install is not None:
        definition["install"] = install
    report.warnings.append(
        f"eggs declare no ports: the primary port (TCP and UDP) follows the server's "
        f"allocation; {EGG_PORT} is only the default"
    )
    fields.report_leftovers(data)
    return Blueprint.from_data(definition, origin=origin), report


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _category(fields: EggFields, name: str) -> str:
    tags = fields.data.get("tags")
    if isinstance(tags, list) and tags and isinstance(tags[0], str):
        return slugify(tags[0])[:63]
    return "minecraft" if "minecraft" in name.lower() else "other"


def _images(fields: EggFields) -> dict[str, Any]:
    data = fields.data
    images: dict[str, str] = {}
    raw = data.get("docker_images")
    if isinstance(raw, dict):
        images = {str(k): str(v) for k, v in raw.items()}
        key = "docker_images"
    elif isinstance(data.get("images"), list):
        images = {str(v): str(v) for v in data["images"]}
        key = "images"
    elif isinstance(data.get("image"), str) and not data["image"].startswith("data:"):
        images = {data["image"]: data["image"]}
        key = "image"
    usable = {label[:64]: image for label, image in images.items() if re.match(IMAGE, image)}
    for label, image in images.items():
        if image not in usable.values():
            fields.explain(path_of(key, label), "not a container image reference", image)
    if not usable:
        raise EggImportError("the egg names no usable docker image")
    fields.take(key)
    first = next(iter(usable.values()))
    return {"image": first, "images": usable if len(usable) > 1 else {}}


def _startup_command(fields: EggFields, known: set[str]) -> str:
    data = fields.data
    commands = data.get("startup_commands")
    if isinstance(commands, dict) and commands:
        (label, command), *others = list(commands.items())
        fields.take(path_of("startup_commands", label))
        for other, text in others:
            fields.explain(
                path_of("startup_commands", other),
                "only the first startup command is used; choose another by editing it",
                text,
            )
    else:
        command = data.get("startup")
        fields.take("startup")
    text = rewrite_placeholders(_text(command), fields, "startup")
    for name in referenced(text):
        if name not in known:
            fields.report.warnings.append(
                f"startup uses {{{{{name}}}}}, which the egg does not declare; it renders empty"
            )
            text = re.sub(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", "", text)
    if not text:
        raise EggImportError("the egg has no startup command")
    return text


def _variables(fields: EggFields) -> list[dict[str, Any]]:
    raw = fields.data.get("variables")
    if not isinstance(raw, list):
        return []
    indexed = [(i, v) for i, v in enumerate(raw) if isinstance(v, dict)]
    indexed.sort(key=lambda item: (_sort_key(item[1].get("sort")), item[0]))
    out: list[dict[str, Any]] = []
    for index, var in indexed:
        converted = _variable(fields, f"variables[{index}]", var)
        if converted is not None and all(v["env"] != converted["env"] for v in out):
            out.append(converted)
    return out


def _sort_key(value: object) -> int:
    return value if isinstance(value, int) else 1_000_000


def _variable(fields: EggFields, path: str, var: dict[str, Any]) -> dict[str, Any] | None:
    env = _text(var.get("env_variable"))
    if not re.match(ENV_KEY, env):
        fields.explain(path, "the variable has no usable env_variable name", env)
        return None
    rules = var.get("rules")
    rule_texts = rules if isinstance(rules, list) else None
    parsed = parse_rules(
        rule_texts if rule_texts is not None else (rules if isinstance(rules, str) else None)
    )
    for text in parsed.unknown:
        fields.explain(f"{path}.rules", f"unknown rule {text!r} dropped", text)
    for text, why in parsed.invalid:
        fields.explain(f"{path}.rules", f"rule {text!r} dropped: {why}", text)
    default = var.get("default_value")
    field_type = FIELD_TYPES.get(_text(var.get("field_type")) or "text")
    out: dict[str, Any] = {
        "env": env,
        "name": (_text(var.get("name")) or env)[:255],
        "description": _text(var.get("description"))[:4096],
        "default": "" if default is None else str(default)[:4096],
        "user_viewable": bool(var.get("user_viewable", True)),
        "user_editable": bool(var.get("user_editable", True)),
        "rules": [str(r) for r in parsed.rules],
        "field_type": field_type or "text",
    }
    used = {"name", "description", "env_variable", "default_value", "rules", "sort"}
    used |= {"user_viewable", "user_editable"} | ({"field_type"} if field_type else set())
    for key in var:
        if key in used:
            fields.take(f"{path}.{key}")
    problems = parsed.check(out["default"])
    if problems:
        fields.report.warnings.append(
            f"{env}: the default {out['default']!r} {'; '.join(problems)} — "
            "users must set a value before deploying"
        )
    return out


def _install(fields: EggFields) -> dict[str, Any] | None:
    raw = fields.data.get("scripts")
    installation = raw.get("installation") if isinstance(raw, dict) else None
    if not isinstance(installation, dict):
        return None
    script = _text(installation.get("script"))
    image = _text(installation.get("container"))
    entrypoint = _text(installation.get("entrypoint")) or "bash"
    if not script:
        fields.take("scripts.installation")
        return None
    if not re.match(IMAGE, image):
        fields.explain("scripts.installation", "the install container is not an image", image)
        return None
    fields.take("scripts.installation")
    return {"image": image, "entrypoint": entrypoint[:255], "script": script.replace("\r\n", "\n")}


def _source(fields: EggFields, egg_format: str, origin: str) -> dict[str, Any]:
    data = fields.data
    raw_meta = data.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    source: dict[str, Any] = {"kind": "egg", "format": egg_format, "ref": origin[:2048]}
    pairs = {
        "egg_uuid": ("uuid", data.get("uuid")),
        "update_url": ("meta.update_url", meta.get("update_url")),
        "author": ("author", data.get("author")),
        "exported_at": ("exported_at", data.get("exported_at")),
    }
    for target, (path, value) in pairs.items():
        if isinstance(value, str) and value:
            source[target] = value[:2048] if target == "update_url" else value[:255]
            fields.take(path)
    return source


def _extras(fields: EggFields) -> dict[str, Any]:
    data = fields.data
    extras: dict[str, Any] = {}
    features = data.get("features")
    if isinstance(features, list):
        extras["features"] = [str(f)[:64] for f in features][:64]
        fields.take("features")
    denylist = data.get("file_denylist")
    if isinstance(denylist, list):
        extras["file_denylist"] = [str(f)[:1024] for f in denylist][:256]
        fields.take("file_denylist")
    tags = data.get("tags")
    if isinstance(tags, list):
        extras["tags"] = [str(t)[:64] for t in tags][:32]
        fields.take("tags")
    image = data.get("image")
    if isinstance(image, str) and image.startswith("data:image/"):
        if len(image) <= MAX_ICON_CHARS and ";base64," in image:
            extras["icon"] = image
            fields.take("image")
        else:
            fields.explain("image", f"the icon is larger than {MAX_ICON_CHARS // 1024} KiB")
    return extras
