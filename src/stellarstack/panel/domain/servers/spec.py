"""The `server.create` payload: a `protocol.servers.ServerSpec` rendered from blueprint and row.

Nothing a user typed becomes part of a command line. Values travel in `env`; the startup
command refers to them as `"${NAME}"` (`blueprints.startup.shell_command`), and config-file
values are rendered once with `render_text`, so a value such as `{{OTHER}}` or `$(id)` stays
plain text wherever it lands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stellarstack.blueprints.model import BUILTIN_VARIABLES
from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.blueprints.startup import render_text, shell_command
from stellarstack.panel.db.models import Allocation, Server
from stellarstack.protocol.servers import (
    ConfigEdit,
    InstallStep,
    Limits,
    PortMapping,
    ReadyProbe,
    ServerSpec,
    StopMethod,
)

__all__ = ["DEFAULT_MOUNT", "build_spec", "builtin_env", "startup_argv"]

DEFAULT_MOUNT = "/home/container"
# The shell the startup script runs in (present in every image the catalogue uses).
SHELL = "/bin/sh"


def _mount_path(spec: BlueprintSpec) -> str:
    return spec.volumes[0].path if spec.volumes else DEFAULT_MOUNT


def builtin_env(server: Server, allocations: Sequence[Allocation]) -> dict[str, str]:
    """SERVER_PORT / SERVER_IP / SERVER_MEMORY / SERVER_ID of a server."""
    primary = next(
        (a for a in allocations if a.is_primary), allocations[0] if allocations else None
    )
    env = {"SERVER_MEMORY": str(server.memory_mb), "SERVER_ID": str(server.id)}
    if primary is not None:
        env["SERVER_PORT"] = str(primary.port)
        env["SERVER_IP"] = primary.ip
    return env


def _port_env(spec: BlueprintSpec, allocations: Sequence[Allocation]) -> dict[str, str]:
    env: dict[str, str] = {}
    for port, allocation in zip(spec.ports, allocations, strict=False):
        if port.env:
            env[port.env] = str(allocation.port)
    return env


def startup_argv(
    spec: BlueprintSpec, values: Mapping[str, str], env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The main process's argv and the environment it needs (values included).

    An empty argv means the image's own entrypoint (the blueprint has no startup command):
    the values then reach it through the environment only.
    """
    template = spec.startup.command or (spec.process.command if spec.process else None)
    merged = {**values, **env}
    if template is None:
        return [], merged
    rendered = shell_command(template, merged, builtins=BUILTIN_VARIABLES)
    return rendered.argv(SHELL), {**merged, **rendered.env}


def _ready(spec: BlueprintSpec) -> ReadyProbe | None:
    ready = spec.startup.ready
    if ready is None:
        return None
    return ReadyProbe(
        type=ready.type,
        pattern=ready.pattern,
        port=ready.port,
        path=ready.path,
        timeout=float(ready.timeout),
    )


def _stop(spec: BlueprintSpec) -> StopMethod:
    stop = spec.startup.stop
    return StopMethod(
        command=stop.command, signal=stop.signal or "SIGTERM", timeout=float(stop.timeout)
    )


def _install(spec: BlueprintSpec) -> InstallStep | None:
    install = spec.install
    if install is None:
        return None
    return InstallStep(
        image=install.image.lower(),
        entrypoint=install.entrypoint,
        script=install.script,
        timeout=float(install.timeout),
    )


def _config_files(spec: BlueprintSpec, env: Mapping[str, str]) -> list[ConfigEdit]:
    edits: list[ConfigEdit] = []
    for config in spec.config_files:
        rendered = {
            key: render_text(value, env) if isinstance(value, str) else value
            for key, value in config.set.items()
        }
        edits.append(ConfigEdit(path=config.path, parser=config.parser, set=rendered))
    return edits


def build_spec(
    server: Server,
    spec: BlueprintSpec,
    values: Mapping[str, str],
    allocations: Sequence[Allocation],
    *,
    deployment_id: str | None,
    start_on_completion: bool = True,
) -> ServerSpec:
    """The whole `server.create` payload for a server whose rows are in place."""
    ordered = sorted(allocations, key=lambda a: not a.is_primary)
    env = {**builtin_env(server, ordered), **_port_env(spec, ordered)}
    command, process_env = startup_argv(spec, values, env)
    protocols = [p.protocol for p in spec.ports]
    ports = [
        PortMapping(
            ip=a.ip,
            port=a.port,
            protocol=protocols[i] if i < len(protocols) else a.protocol.value,
            primary=i == 0,
        )
        for i, a in enumerate(ordered)
    ]
    image = server.docker_image or spec.image_for(server.version_tag)
    return ServerSpec(
        server_id=str(server.id),
        deployment_id=deployment_id,
        image=image.lower(),
        binaries=list(spec.process.binaries) if spec.process else [],
        command=command,
        env=process_env,
        mount_path=_mount_path(spec),
        limits=Limits(
            memory_mb=server.memory_mb,
            swap_mb=server.swap_mb,
            cpu=server.cpu_limit,
            disk_mb=server.disk_mb,
            pids=server.pids_limit,
            io_weight=server.io_weight,
        ),
        ports=ports,
        stop=_stop(spec),
        ready=_ready(spec),
        install=_install(spec),
        config_files=_config_files(spec, process_env),
        start_on_completion=start_on_completion,
    )
