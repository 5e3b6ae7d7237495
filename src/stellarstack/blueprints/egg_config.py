"""The `config` part of an egg: placeholders, stop, ready check and config-file edits.

Pterodactyl writes `config.files` / `config.startup` / `config.logs` as JSON *strings* inside
the JSON (PTDL) and as mappings (PLCN); `normalize` makes them mappings first. Wings fills
`{{server.build.default.port}}`-style placeholders from the server; they are rewritten to our
variables (`{{SERVER_PORT}}`), and the ones with no equivalent are reported.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from typing import Any

from stellarstack.blueprints.egg_report import EggFields, path_of
from stellarstack.blueprints.model import ConfigFile

__all__ = ["config_files", "normalize", "ready_check", "rewrite_placeholders", "stop_spec"]

DOTTED = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_*-]+)+)\s*\}\}")
ALIASES = {
    "server.build.default.port": "SERVER_PORT",
    "server.allocations.default.port": "SERVER_PORT",
    "server.build.default.ip": "SERVER_IP",
    "server.allocations.default.ip": "SERVER_IP",
    "server.build.memory": "SERVER_MEMORY",
    "server.build.memory_limit": "SERVER_MEMORY",
    "server.uuid": "SERVER_ID",
}
ENV_PREFIXES = ("server.build.env.", "server.environment.", "env.")
SIGNALS = {"C": "SIGINT", "INT": "SIGINT", "TERM": "SIGTERM", "QUIT": "SIGQUIT", "HUP": "SIGHUP"}
SIGNALS |= {"KILL": "SIGKILL", "USR1": "SIGUSR1", "USR2": "SIGUSR2"}
PARSERS = frozenset({"properties", "yaml", "json", "ini"})
MAX_READY_PATTERN = 512


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the egg whose `config.*` JSON strings are parsed into mappings."""
    copied = copy.deepcopy(data)
    config = copied.get("config")
    if isinstance(config, dict):
        for key in ("files", "startup", "logs"):
            value = config.get(key)
            if isinstance(value, str):
                # Unparseable text is left as it is and reported as unmapped.
                with contextlib.suppress(ValueError):
                    config[key] = json.loads(value) if value.strip() else {}
    return copied


def _target(name: str) -> str | None:
    if name in ALIASES:
        return ALIASES[name]
    for prefix in ENV_PREFIXES:
        if name.startswith(prefix) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name[len(prefix) :]):
            return name[len(prefix) :]
    return None


def rewrite(text: str) -> tuple[str, list[str]]:
    """`{{server.…}}` placeholders → `{{OUR_NAME}}`; returns the text and what had no match."""
    unknown: list[str] = []

    def replace(match: re.Match[str]) -> str:
        target = _target(match.group(1))
        if target is None:
            unknown.append(match.group(1))
            return ""
        return "{{" + target + "}}"

    return DOTTED.sub(replace, text), unknown


def rewrite_placeholders(text: str, fields: EggFields, path: str) -> str:
    """Rewrite a template; placeholders with no equivalent render empty and are reported."""
    out, unknown = rewrite(text)
    for name in unknown:
        fields.explain(path, f"{{{{{name}}}}} has no StellarStack equivalent; it renders empty")
    return out


def _config(fields: EggFields) -> dict[str, Any]:
    config = fields.data.get("config")
    return config if isinstance(config, dict) else {}


def stop_spec(fields: EggFields) -> dict[str, Any]:
    """`config.stop`: `^C` (or `^SIGTERM`…) is a signal, anything else a console command."""
    raw = _config(fields).get("stop")
    stop = raw.strip() if isinstance(raw, str) else ""
    if not stop:
        fields.report.warnings.append("the egg has no stop command; SIGTERM is sent instead")
        return {"signal": "SIGTERM", "timeout": 30}
    fields.take("config.stop")
    if stop.startswith("^"):
        name = stop[1:].upper().removeprefix("SIG")
        if name in SIGNALS:
            return {"signal": SIGNALS[name], "timeout": 30}
    return {"command": stop[:1024], "timeout": 30}


def ready_check(fields: EggFields) -> dict[str, Any] | None:
    """`config.startup.done` (a string or a list) → a log ready check matching it literally."""
    startup = _config(fields).get("startup")
    done = startup.get("done") if isinstance(startup, dict) else None
    texts = [done] if isinstance(done, str) else done if isinstance(done, list) else []
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        fields.report.warnings.append("the egg has no `done` string; no ready check is set")
        return None
    pattern = "|".join(literal_pattern(t) for t in texts)
    if len(pattern) > MAX_READY_PATTERN:
        fields.explain("config.startup.done", "the done strings are too long for a ready check")
        return None
    fields.take("config.startup.done")
    return {"type": "log", "pattern": pattern, "timeout": 600}


def literal_pattern(text: str) -> str:
    """A regex matching `text` literally (only metacharacters escaped, so it stays readable)."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def _edit_value(
    fields: EggFields, path: str, value: object, known: set[str]
) -> str | int | float | bool | None:
    if isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        fields.explain(path, "conditional or nested replacements are not supported", value)
        return None
    text, unknown = rewrite(value)
    if unknown:
        fields.explain(path, f"{{{{{unknown[0]}}}}} has no StellarStack equivalent", value)
        return None
    undeclared = [n for n in re.findall(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", text) if n not in known]
    if undeclared:
        fields.explain(path, f"uses {{{{{undeclared[0]}}}}}, which the egg does not declare")
        return None
    return text


def config_files(fields: EggFields, known: set[str]) -> list[dict[str, Any]]:
    """`config.files` entries with a supported parser → config-file edits."""
    files = _config(fields).get("files")
    if not isinstance(files, dict):
        return []
    out: list[dict[str, Any]] = []
    for name, spec in files.items():
        base = path_of("config.files", name)
        parser = spec.get("parser") if isinstance(spec, dict) else None
        if parser not in PARSERS:
            fields.explain(base, f"the {parser!r} config parser is not supported", spec)
            continue
        find = spec.get("find") if isinstance(spec, dict) else None
        edits: dict[str, str | int | float | bool] = {}
        for key, value in (find or {}).items():
            path = path_of(f"{base}.find", key)
            if "*" in str(key):
                fields.explain(path, "wildcard keys are not supported", value)
                continue
            edit = _edit_value(fields, path, value, known)
            if edit is not None:
                edits[str(key)] = edit
                fields.take(path)
        candidate = {"path": str(name), "parser": parser, "set": edits}
        if not edits:
            continue
        try:
            ConfigFile.model_validate(candidate)
        except ValueError:
            fields.explain(base, "the file is outside the server directory", name)
            continue
        fields.take(f"{base}.parser")
        out.append(candidate)
    return out
