"""Container specs refuse what no runtime should run: bad ids, names, paths, ports, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stellarstack.daemon.runtime import ContainerSpec, InvalidSpecError, PortBinding
from stellarstack.daemon.runtime.docker import container_config


@pytest.mark.parametrize(
    "binding",
    [
        {"host_ip": "localhost", "host_port": 25565},
        {"host_ip": "0.0.0.0.0", "host_port": 25565},
        {"host_ip": "127.0.0.1", "host_port": 0},
        {"host_ip": "127.0.0.1", "host_port": 65536},
        {"host_ip": "127.0.0.1", "host_port": 25565, "container_port": -1},
        {"host_ip": "127.0.0.1", "host_port": 25565, "protocol": "sctp"},
    ],
)
def test_port_bindings_need_an_ip_and_valid_ports(binding: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpecError):
        PortBinding(**binding)


@pytest.mark.parametrize(
    "options",
    [
        {"server_id": "../escape"},
        {"server_id": "a/b"},
        {"server_id": ""},
        {"server_id": "x" * 200},
        {"env": {"A=B": "x"}},
        {"env": {"GOOD": "nul\0byte"}},
        {"command": ("sh", "-c", "echo\0"), "env": {}},
        {"volume_dir": Path("relative/dir")},
        {"memory_limit": 0},
        {"pids_limit": -5},
        {"cpu_limit": 0.0},
        {"cpu_limit": float("nan")},
    ],
)
def test_specs_with_hostile_or_impossible_values_are_refused(options: dict[str, Any]) -> None:
    values: dict[str, Any] = {"server_id": "srv-1", "image": "img"} | options
    with pytest.raises(InvalidSpecError):
        ContainerSpec(**values)


def test_docker_create_body_carries_the_limits_and_keeps_stdin_open() -> None:
    spec = ContainerSpec(
        server_id="srv-1",
        image="img",
        command=("./start",),
        memory_limit=1 << 30,
        cpu_limit=1.5,
        pids_limit=256,
        ports=(PortBinding("127.0.0.1", 30000, container_port=25565),),
        volume_dir=Path("/srv/srv-1"),
        user="1000:1000",
    )
    body = container_config(spec, {"stellarstack.server_id": "srv-1"})
    host = body["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (1 << 30, 1_500_000_000, 256)
    assert host["PortBindings"] == {"25565/tcp": [{"HostIp": "127.0.0.1", "HostPort": "30000"}]}
    assert body["ExposedPorts"] == {"25565/tcp": {}}
    assert body["OpenStdin"] is True and body["StdinOnce"] is False and body["Tty"] is False
    assert body["Cmd"] == ["./start"] and body["User"] == "1000:1000"
    assert (
        host["Privileged"] is False
        and host["CapDrop"]
        and "no-new-privileges" in host["SecurityOpt"]
    )
