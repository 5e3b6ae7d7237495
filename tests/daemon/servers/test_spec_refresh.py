"""A start or restart carrying the panel's current ServerSpec: a changed spec is stored and the
container rebuilt from it (files kept), an unchanged one starts the container it has, a new
image that cannot be pulled fails the start and keeps the old container — real Docker with
the test game image, and the process runtime."""

from __future__ import annotations

import aiodocker
import pytest

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.protocol.commands import Command, CommandType, ServerPowerPayload
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.servers import ServerSpec
from tests.daemon.servers.conftest import Servers
from tests.support.services import DockerEngine


async def host_config(engine: DockerEngine, container_id: str) -> dict[str, object]:
    """The container's HostConfig as the engine reports it."""
    async with aiodocker.Docker(url=engine.host) as docker:
        container = await docker.containers.get(container_id)
        config: dict[str, object] = container._container["HostConfig"]
        return config


async def output_of(servers: Servers, server_id: str) -> str:
    """The server's recent output as one text."""
    return "\n".join(line.text for line in await servers.runtime.logs(server_id, tail=200))


def changed(spec: ServerSpec, **fields: object) -> ServerSpec:
    """What the panel sends after an edit: the spec with new values, no deployment id."""
    return spec.model_copy(update={"deployment_id": None, **fields})


@pytest.mark.docker
async def test_a_restart_with_more_memory_rebuilds_the_container_and_keeps_the_files(
    docker_servers: Servers, docker_engine: DockerEngine, server_id: str
) -> None:
    servers = docker_servers
    spec = servers.spec(server_id)
    await servers.manager.create(spec)
    (servers.store.volume_dir(server_id) / "world.dat").write_text("saved progress")
    before = await servers.runtime.status(server_id)
    assert (await host_config(docker_engine, before.container_id))["Memory"] == 128 << 20
    wanted = changed(spec, limits=spec.limits.model_copy(update={"memory_mb": 256}))
    result = await servers.manager.power(server_id, "restart", spec=wanted)
    assert result["status"] == "running"
    after = await servers.runtime.status(server_id)
    assert after.container_id != before.container_id
    assert (await host_config(docker_engine, after.container_id))["Memory"] == 256 << 20
    assert (servers.store.volume_dir(server_id) / "world.dat").read_text() == "saved progress"
    stored = servers.store.load(server_id)
    assert stored is not None
    assert stored.limits.memory_mb == 256
    assert stored.deployment_id == f"dep-{server_id}"  # the install's deployment is kept
    statuses = await servers.status_names(server_id)
    assert statuses[-4:] == ["stopping", "stopped", "starting", "running"]


async def test_a_changed_variable_reaches_the_process_on_the_next_start(
    servers: Servers, server_id: str
) -> None:
    spec = servers.spec(server_id, configFiles=[])
    await servers.manager.create(spec)
    await servers.manager.power(server_id, "stop")
    edit = [{"path": "server.properties", "parser": "properties", "set": {"level": "beta"}}]
    wanted = ServerSpec.model_validate(
        changed(spec, env={"WORLD_NAME": "beta"}).to_wire() | {"configFiles": edit}
    )
    await servers.manager.power(server_id, "start", spec=wanted)
    assert "Preparing world beta" in await output_of(servers, server_id)
    properties = servers.store.volume_dir(server_id) / "server.properties"
    assert "level=beta" in properties.read_text()  # config edits applied again
    stored = servers.store.load(server_id)
    assert stored is not None
    assert stored.env["WORLD_NAME"] == "beta"


@pytest.mark.docker
async def test_an_unchanged_spec_starts_the_same_container(
    docker_servers: Servers, server_id: str
) -> None:
    servers = docker_servers
    spec = servers.spec(server_id)
    await servers.manager.create(spec)
    before = await servers.runtime.status(server_id)
    stored_at = servers.store.spec_path(server_id).stat().st_mtime_ns
    await servers.manager.power(server_id, "restart", spec=changed(spec))
    after = await servers.runtime.status(server_id)
    assert after.container_id == before.container_id
    assert after.running
    assert servers.store.spec_path(server_id).stat().st_mtime_ns == stored_at


@pytest.mark.docker
async def test_a_new_image_that_cannot_be_pulled_fails_the_start_and_keeps_the_old_container(
    docker_servers: Servers, server_id: str
) -> None:
    servers = docker_servers
    spec = servers.spec(server_id)
    await servers.manager.create(spec)
    await servers.manager.power(server_id, "stop")
    before = await servers.runtime.status(server_id)
    wanted = changed(spec, image="127.0.0.1:1/stellarstack-test/missing:2")
    with pytest.raises(CommandFailedError, match="it keeps its previous image"):
        await servers.manager.power(server_id, "start", spec=wanted)
    assert (await servers.runtime.status(server_id)).container_id == before.container_id
    stored = servers.store.load(server_id)
    assert stored is not None
    assert stored.image == spec.image
    result = await servers.manager.power(server_id, "start")  # still starts as it was
    assert result["status"] == "running"


@pytest.mark.docker
async def test_a_change_the_container_does_not_hold_is_stored_without_a_rebuild(
    docker_servers: Servers, server_id: str
) -> None:
    servers = docker_servers
    spec = servers.spec(server_id)
    await servers.manager.create(spec)
    before = await servers.runtime.status(server_id)
    limits = spec.limits.model_copy(update={"disk_mb": 512})
    wanted = changed(spec, limits=limits, stop=spec.stop.model_copy(update={"timeout": 20}))
    await servers.manager.power(server_id, "restart", spec=wanted)
    assert (await servers.runtime.status(server_id)).container_id == before.container_id
    stored = servers.store.load(server_id)
    assert stored is not None
    assert (stored.limits.disk_mb, stored.stop.timeout) == (512, 20)


async def test_a_reinstall_says_installing_once_its_stop_is_over(
    servers: Servers, server_id: str
) -> None:
    await servers.manager.create(servers.spec(server_id))
    await servers.manager.reinstall(servers.spec(server_id))  # no install step
    statuses = await servers.status_names(server_id)
    assert statuses[-5:] == ["stopping", "stopped", "installing", "starting", "running"]


def test_a_power_command_without_a_spec_reads_as_before() -> None:
    command = Command.create(CommandType.SERVER_RESTART, {"serverId": "t-mine"})
    payload = command.payload_as(ServerPowerPayload)
    assert payload.spec is None
    assert payload.to_wire() == {"serverId": "t-mine"}


def test_a_power_command_carrying_another_servers_spec_is_malformed() -> None:
    other = {"serverId": "t-other", "image": "game:1", "limits": {"memoryMb": 64, "diskMb": 64}}
    command = Command.create(CommandType.SERVER_START, {"serverId": "t-mine", "spec": other})
    with pytest.raises(MalformedMessageError, match="not the server this command is about"):
        command.payload_as(ServerPowerPayload)
