"""The blueprint format: pydantic models of a game template, read from YAML.

Every model forbids unknown keys, so a typo (`stop_comand:`) fails loudly with its path instead
of being ignored. `Blueprint.from_yaml` / `Blueprint.from_data` raise `InvalidBlueprint` with one
(field path, message) pair per problem. `docs/blueprints.md` describes the format with a full
example; the shipped catalogue lives in `catalog/*.yaml`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stellarstack.blueprints.errors import InvalidBlueprint
from stellarstack.blueprints.rules import RuleSet, parse_rules

__all__ = [
    "BUILTIN_VARIABLES",
    "FORMAT",
    "Blueprint",
    "ConfigFile",
    "Constraints",
    "DockerSpec",
    "InstallSpec",
    "Port",
    "ProcessSpec",
    "ReadyCheck",
    "Resources",
    "StartupSpec",
    "StopSpec",
    "Variable",
    "Version",
    "Volume",
    "referenced",
]

FORMAT = "stellarstack/v1"
# Provided by the panel at deployment; blueprints may reference them without declaring them.
BUILTIN_VARIABLES: dict[str, str] = {
    "SERVER_PORT": "The server's primary port",
    "SERVER_IP": "The address the server listens on",
    "SERVER_MEMORY": "The memory limit in MiB",
    "SERVER_ID": "The server's id",
    "TZ": "The time zone",
}
SLUG = r"^[a-z0-9][a-z0-9-]{0,126}[a-z0-9]$"
ENV_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
IMAGE = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$"
Signal = Literal["SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2"]
# `{{NAME}}` must name a known variable; `${NAME}` is also shell syntax, so an undeclared one is
# left for the shell (it reads the container's own environment, like `${HOME}`).
MUSTACHE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
MAX_ICON_CHARS = 96 * 1024
# Page paths under /blueprints/ that a slug must not shadow.
RESERVED_SLUGS = frozenset({"import", "sync", "new"})
# libyaml's safe loader when PyYAML was built with it (several times faster), else Python's.
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Strict(BaseModel):
    """Base of every blueprint model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class DockerSpec(Strict):
    """The container image, and named alternatives (`Java 21` → `…:java21`) a user may pick."""

    image: str = Field(pattern=IMAGE)
    images: dict[str, str] = Field(default_factory=dict)

    @field_validator("images")
    @classmethod
    def _images_are_references(cls, images: dict[str, str]) -> dict[str, str]:
        for label, image in images.items():
            if not re.match(IMAGE, image) or not 0 < len(label) <= 64:
                raise ValueError(f"{label!r}: {image!r} is not an image reference")
        return images


class ProcessSpec(Strict):
    """How to run without containers: the binaries that must be on PATH, and the command."""

    binaries: list[str] = Field(min_length=1)
    command: str | None = Field(default=None, max_length=4096)


class Resources(Strict):
    """Default resources of a new server (users may change them within their quotas)."""

    memory_mb: int = Field(default=1024, ge=64, le=1024 * 1024)
    cpu: int = Field(default=100, ge=10, le=12800, description="Percent of one core.")
    disk_mb: int = Field(default=5120, ge=64, le=16 * 1024 * 1024)
    swap_mb: int = Field(default=0, ge=-1, le=1024 * 1024)
    pids: int = Field(default=512, ge=16, le=65536)


class Port(Strict):
    """A port the game listens on; the first one is the primary (`SERVER_PORT`)."""

    name: str = Field(min_length=1, max_length=64)
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = ""
    # The variable that carries the allocated port (the primary one is always SERVER_PORT).
    env: str | None = Field(default=None, pattern=ENV_KEY)


class Variable(Strict):
    """A setting passed to the game as an environment variable, validated by its rules."""

    env: str = Field(pattern=ENV_KEY)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=4096)
    default: str = Field(default="", max_length=4096)
    user_viewable: bool = True
    user_editable: bool = True
    rules: str | list[str] = ""
    field_type: Literal["text", "number", "boolean", "select", "password"] = "text"

    @field_validator("default", mode="before")
    @classmethod
    def _default_as_text(cls, value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return "" if value is None else value

    @field_validator("rules")
    @classmethod
    def _rules_are_known(cls, rules: str | list[str]) -> str | list[str]:
        parsed = parse_rules(rules)
        if parsed.unknown:
            raise ValueError(f"unknown rule(s): {', '.join(parsed.unknown)}")
        if parsed.invalid:
            raise ValueError("; ".join(f"{text}: {why}" for text, why in parsed.invalid))
        return rules

    @property
    def rule_set(self) -> RuleSet:
        """The parsed rules."""
        return parse_rules(self.rules)


class Volume(Strict):
    """A directory of the container that holds data (mounted from the node)."""

    path: str = Field(pattern=r"^/[^\x00]*$", max_length=1024)
    description: str = ""
    backup: bool = True


class StopSpec(Strict):
    """How to stop gracefully: a console command or a signal, then kill after the timeout."""

    command: str | None = Field(default=None, max_length=1024)
    signal: Signal | None = None
    timeout: int = Field(default=30, ge=1, le=3600)

    @model_validator(mode="after")
    def _one_way(self) -> StopSpec:
        if (self.command is None) == (self.signal is None):
            raise ValueError("give exactly one of command or signal")
        return self


class ReadyCheck(Strict):
    """When a started server counts as running: a log line, an open port, or an HTTP answer."""

    type: Literal["log", "port", "http"]
    # For log: a regular expression searched in each console line.
    pattern: str | None = Field(default=None, max_length=512)
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = Field(default=None, max_length=1024)
    timeout: int = Field(default=300, ge=1, le=7200)

    @model_validator(mode="after")
    def _complete(self) -> ReadyCheck:
        if self.type == "log" and not self.pattern:
            raise ValueError("a log ready check needs a pattern")
        if self.type == "log" and self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"the pattern does not compile: {exc}") from exc
        if self.type == "http" and not (self.path or "").startswith("/"):
            raise ValueError("an http ready check needs a path starting with /")
        return self


class StartupSpec(Strict):
    """The command that starts the game, how to stop it, and how to tell it is ready."""

    # None: the image's own entrypoint starts the game (images such as itzg/minecraft-server).
    command: str | None = Field(default=None, min_length=1, max_length=4096)
    stop: StopSpec
    ready: ReadyCheck | None = None


class InstallSpec(Strict):
    """The install script, run once in its own (unprivileged) container with `/mnt/server`."""

    image: str = Field(pattern=IMAGE)
    entrypoint: str = Field(default="bash", min_length=1, max_length=255)
    script: str = Field(min_length=1, max_length=256 * 1024)
    timeout: int = Field(default=1800, ge=10, le=4 * 3600)


class ConfigFile(Strict):
    """Edits applied to a game's config file before each start (values may use variables)."""

    path: str = Field(min_length=1, max_length=1024)
    parser: Literal["properties", "yaml", "json", "ini"]
    set: dict[str, str | int | float | bool] = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        parts = path.replace("\\", "/").split("/")
        if path.startswith(("/", "\\")) or ".." in parts or "\0" in path:
            raise ValueError("must be a path inside the server directory")
        return path


class Version(Strict):
    """A selectable version; it may bring its own image and variable defaults."""

    tag: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    name: str | None = Field(default=None, max_length=255)
    image: str | None = Field(default=None, pattern=IMAGE)
    env: dict[str, str] = Field(default_factory=dict)
    recommended: bool = False
    channel: Literal["stable", "beta", "legacy"] = "stable"
    release_date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    deprecation_notice: str | None = Field(default=None, max_length=1024)
    min_daemon_version: str | None = Field(default=None, max_length=32)


class Constraints(Strict):
    """Which panel versions can use this blueprint (spec §10.5)."""

    min_panel_version: str | None = Field(default=None, max_length=32)
    max_panel_version: str | None = Field(default=None, max_length=32)


class Source(Strict):
    """Where an imported blueprint came from (filled in by the importers)."""

    kind: Literal["builtin", "operator", "egg", "git", "url"] = "builtin"
    format: str | None = None
    ref: str | None = Field(default=None, max_length=2048)
    egg_uuid: str | None = None
    update_url: str | None = Field(default=None, max_length=2048)
    author: str | None = Field(default=None, max_length=255)
    exported_at: str | None = None


class Blueprint(Strict):
    """A game template: what to run, with which settings, and how to install, stop and check it."""

    format: Literal["stellarstack/v1"] = "stellarstack/v1"
    slug: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(default="", max_length=16384)
    category: str = Field(default="other", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    icon: str | None = Field(default=None, max_length=MAX_ICON_CHARS)
    tags: list[str] = Field(default_factory=list, max_length=32)
    docker: DockerSpec
    process: ProcessSpec | None = None
    resources: Resources = Field(default_factory=Resources)
    ports: list[Port] = Field(min_length=1, max_length=32)
    variables: list[Variable] = Field(default_factory=list, max_length=256)
    volumes: list[Volume] = Field(default_factory=lambda: [Volume(path="/data")])
    startup: StartupSpec
    install: InstallSpec | None = None
    config_files: list[ConfigFile] = Field(default_factory=list, max_length=64)
    features: list[str] = Field(default_factory=list, max_length=64)
    file_denylist: list[str] = Field(default_factory=list, max_length=256)
    versions: list[Version] = Field(default_factory=list, max_length=200)
    constraints: Constraints = Field(default_factory=Constraints)
    source: Source = Field(default_factory=Source)

    @field_validator("slug")
    @classmethod
    def _slug_is_not_reserved(cls, slug: str) -> str:
        if slug in RESERVED_SLUGS:
            raise ValueError(f"{slug!r} is reserved; choose another slug")
        return slug

    @field_validator("icon")
    @classmethod
    def _icon_is_safe(cls, icon: str | None) -> str | None:
        if icon is None:
            return None
        if icon.startswith("data:image/") and ";base64," in icon and "<" not in icon:
            return icon
        if re.match(r"^(/|https://)[^\s\"'<>]*$", icon):
            return icon
        raise ValueError("must be a path, an https URL or a data:image/… URL")

    @model_validator(mode="after")
    def _consistent(self) -> Blueprint:
        keys = [v.env for v in self.variables]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"variables declared twice: {', '.join(duplicates)}")
        if self.process and not (self.process.command or self.startup.command):
            raise ValueError("process needs a command (or startup.command)")
        tags = [v.tag for v in self.versions]
        if len(set(tags)) != len(tags):
            raise ValueError("version tags must be unique")
        known = self.known_variables()
        for where, text in self._templates():
            for name in referenced(text):
                if name not in known:
                    raise ValueError(f"{where} uses {{{{{name}}}}}, which is not declared")
        for version in self.versions:
            undeclared = sorted(set(version.env) - set(keys))
            if undeclared:
                raise ValueError(f"version {version.tag} sets undeclared {', '.join(undeclared)}")
        return self

    def _templates(self) -> list[tuple[str, str]]:
        found = [("startup.command", self.startup.command)] if self.startup.command else []
        if self.process and self.process.command:
            found.append(("process.command", self.process.command))
        for config in self.config_files:
            found += [(f"config_files[{config.path}]", str(v)) for v in config.set.values()]
        return found

    def known_variables(self) -> set[str]:
        """The names a template may reference: declared, built in, and port variables."""
        return (
            {v.env for v in self.variables}
            | set(BUILTIN_VARIABLES)
            | {p.env for p in self.ports if p.env}
        )

    def variable(self, env: str) -> Variable | None:
        """The declared variable of this name, or None."""
        return next((v for v in self.variables if v.env == env), None)

    def version(self, tag: str) -> Version | None:
        """The version with this tag, or None."""
        return next((v for v in self.versions if v.tag == tag), None)

    def default_version(self) -> Version | None:
        """The recommended version, else the first."""
        return next((v for v in self.versions if v.recommended), None) or (
            self.versions[0] if self.versions else None
        )

    def image_for(self, tag: str | None) -> str:
        """The image a version runs (its own, else the blueprint's)."""
        version = self.version(tag) if tag else None
        return version.image if version and version.image else self.docker.image

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema (draft 2020-12) of the variables a user may set."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        for variable in self.variables:
            if not variable.user_editable:
                continue
            rules = variable.rule_set
            schema = {"title": variable.name, **rules.json_schema()}
            if variable.description:
                schema["description"] = variable.description
            schema["default"] = _typed_default(variable.default, rules.kind)
            properties[variable.env] = schema
            if rules.required:
                required.append(variable.env)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": f"{self.name} settings",
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    def to_data(self) -> dict[str, Any]:
        """The blueprint as plain data (what `from_data` reads back)."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_data(cls, data: object, *, origin: str = "blueprint") -> Blueprint:
        """Validate parsed data; `InvalidBlueprint` lists every problem with its path."""
        if not isinstance(data, dict):
            raise InvalidBlueprint(f"{origin}: a blueprint must be a mapping at the top level")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [
                (".".join(str(p) for p in err["loc"]) or "blueprint", _message(err))
                for err in exc.errors()
            ]
            summary = "; ".join(f"{path}: {msg}" for path, msg in problems[:5])
            raise InvalidBlueprint(
                f"{origin} is not a valid blueprint: {summary}", problems
            ) from None

    @classmethod
    def from_yaml(cls, text: str, *, origin: str = "blueprint") -> Blueprint:
        """Parse and validate a YAML document."""
        try:
            data = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)
        except yaml.YAMLError as exc:
            raise InvalidBlueprint(f"{origin} is not valid YAML: {exc}") from None
        return cls.from_data(data, origin=origin)


def referenced(text: str) -> list[str]:
    """The variable names a template references as `{{NAME}}`, in order."""
    return [m.group(1) for m in MUSTACHE.finditer(text)]


def _message(err: Any) -> str:
    message = str(err.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def _typed_default(value: str, kind: str) -> object:
    try:
        if kind == "integer":
            return int(value)
        if kind == "numeric":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value.lower() in {"1", "0", "true", "false"}:
        return value.lower() in {"1", "true"}
    return value
