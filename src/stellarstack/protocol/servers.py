"""What the panel tells a daemon about a server: the `server.create` / `server.reinstall` payload.

The panel renders everything from the blueprint and the server's row (spec §8.1.2 step 3):
the daemon needs no blueprint of its own, and a value a user typed never becomes part of a
command line — it travels in `env`, and `command` refers to it as `"${NAME}"` (see
`stellarstack.blueprints.startup.shell_command`).

Usage::

    spec = ServerSpec(server_id=str(server.id), image="…", command=["/bin/sh", "-c", script],
                      env={"SERVER_PORT": "25565"}, limits=Limits(memory_mb=1024, …), …)
    await send_command(db, broker, node, CommandType.SERVER_CREATE, payload=spec.to_wire())
    ...
    spec = command.payload_as(ServerSpec)                     # on the daemon
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from stellarstack.protocol.keys import check_identifier
from stellarstack.protocol.wire import WireModel

__all__ = [
    "ConfigEdit",
    "CrashPolicy",
    "InstallStep",
    "Limits",
    "PortMapping",
    "ReadyProbe",
    "ServerDeletePayload",
    "ServerSpec",
    "StopMethod",
]

_SIGNAL = r"^(SIG)?[A-Z0-9]{1,12}$"
_IMAGE = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$"


class Limits(WireModel):
    """Resource limits: MiB, percent of one core (0 = unlimited), process count."""

    memory_mb: int = Field(ge=16, le=1024 * 1024)
    swap_mb: int = Field(default=0, ge=-1, le=1024 * 1024)
    cpu: int = Field(default=0, ge=0, le=12800, description="Percent of one core; 0 = no cap.")
    disk_mb: int = Field(ge=16, le=16 * 1024 * 1024)
    pids: int = Field(default=512, ge=16, le=65536)
    io_weight: int = Field(default=500, ge=10, le=1000)


class PortMapping(WireModel):
    """One allocation bound for the server: host `ip:port`, same port inside the container."""

    ip: str = Field(max_length=64)
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    primary: bool = False


class StopMethod(WireModel):
    """How to stop the server: a console command or a signal, then kill after `timeout`."""

    command: str | None = Field(default=None, max_length=1024)
    signal: str = Field(default="SIGTERM", pattern=_SIGNAL)
    timeout: float = Field(default=30, gt=0, le=3600)


class ReadyProbe(WireModel):
    """When the server counts as RUNNING: a log line matching `pattern`, a port, or an HTTP 2xx."""

    type: Literal["log", "port", "http"]
    pattern: str | None = Field(default=None, max_length=512)
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = Field(default=None, max_length=1024)
    timeout: float = Field(default=300, gt=0, le=7200)


class InstallStep(WireModel):
    """The install script, run once in its own unprivileged container (files at /mnt/server)."""

    image: str = Field(pattern=_IMAGE)
    entrypoint: str = Field(default="sh", min_length=1, max_length=255)
    script: str = Field(min_length=1, max_length=256 * 1024)
    timeout: float = Field(default=1800, gt=0, le=4 * 3600)


class ConfigEdit(WireModel):
    """Set keys in one config file of the server (values already rendered by the panel)."""

    path: str = Field(min_length=1, max_length=1024)
    parser: Literal["properties", "yaml", "json", "ini"]
    set: dict[str, str | int | float | bool]


class CrashPolicy(WireModel):
    """Restart after an unexpected exit, unless the previous crash was within `window` seconds."""

    restart: bool = True
    window: float = Field(default=60, ge=0, le=86400)
    max_backoff: float = Field(default=60, ge=0, le=3600)


class ServerSpec(WireModel):
    """Everything a daemon needs to install and run one server.

    `image` is used by the Docker runtime; `binaries` lists what the process runtime needs on
    PATH (empty: the blueprint cannot run without Docker). `command` is the argument list of
    the main process (usually `["/bin/sh", "-c", script]`) run in the server directory, which
    the Docker runtime mounts at `mount_path`; empty means the image's own entrypoint and
    command (images such as itzg/minecraft-server start themselves from `env`), which only
    the Docker runtime can run.
    """

    server_id: str
    deployment_id: str | None = None
    image: str = Field(pattern=_IMAGE)
    binaries: list[str] = Field(default_factory=list, max_length=16)
    command: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, str] = Field(default_factory=dict)
    mount_path: str = Field(default="/home/container", pattern=r"^/[^\x00]*$", max_length=1024)
    limits: Limits
    ports: list[PortMapping] = Field(default_factory=list, max_length=64)
    stop: StopMethod = Field(default_factory=StopMethod)
    ready: ReadyProbe | None = None
    install: InstallStep | None = None
    config_files: list[ConfigEdit] = Field(default_factory=list, max_length=64)
    crash: CrashPolicy = Field(default_factory=CrashPolicy)
    start_on_completion: bool = True
    """Start the server once installed (a new deployment); False leaves it OFFLINE."""

    @field_validator("server_id")
    @classmethod
    def _safe_server_id(cls, value: str) -> str:
        return check_identifier(value, kind="server id")


class ServerDeletePayload(WireModel):
    """Payload of `server.delete`: remove the container and, unless `keep_files`, its files."""

    server_id: str
    keep_files: bool = False

    @field_validator("server_id")
    @classmethod
    def _safe_server_id(cls, value: str) -> str:
        return check_identifier(value, kind="server id")
