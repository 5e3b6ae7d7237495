"""POST /api/v1/servers: a deployment writes its rows and queues a valid `server.create`;
every hostile request is a 4xx naming the field, and leaves no server or reserved port."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import httpx

from stellarstack.panel.db.enums import AuditStatus, NodeStatus, Role
from stellarstack.panel.db.models import (
    Allocation,
    AuditLog,
    Deployment,
    Server,
    ServerVariable,
)
from stellarstack.protocol.servers import ServerSpec
from tests.panel.servers.conftest import Caller, ServersPanel


def _fields(response: httpx.Response) -> dict[str, str]:
    errors = response.json()["error"].get("errors", [])
    return {e["field"]: e["message"] for e in errors}


async def _nothing_left(panel: ServersPanel, client: Caller, node: uuid.UUID) -> None:
    assert await panel.count(Server, owner_id=client.user_id) == 0
    assert all(a.server_id is None for a in await panel.allocations(node))
    assert await panel.count(Server, node_id=node) == 0


async def test_a_deployment_writes_rows_and_queues_a_valid_server_create(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    node = await panel.node([30001])
    response = await player.post(
        "/api/v1/servers",
        json={
            "name": "My game",
            "blueprint": "test-game",
            "nodeId": str(node),
            "variables": {"WORLD_NAME": "earth"},
        },
    )
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    server, deployment = data["server"], data["deployment"]
    assert server["status"] == "installing" and server["versionTag"] == "1.0"
    assert server["nodeId"] == str(node) and server["address"] == "10.0.0.1:30001"
    assert (server["memoryMb"], server["cpu"], server["diskMb"]) == (128, 50, 256)
    assert deployment["kind"] == "install" and deployment["status"] == "pending"

    [command] = await panel.commands_of(node)
    assert command.type == "server.create"
    spec = command.payload_as(ServerSpec)
    assert spec.server_id == server["id"] and spec.deployment_id == deployment["id"]
    assert spec.command == ["/bin/sh", "-c", 'exec sh "${GAME_SCRIPT}"']
    assert spec.env["WORLD_NAME"] == "earth" and spec.env["GAME_SCRIPT"] == "/game.sh"
    assert (spec.env["SERVER_PORT"], spec.env["SERVER_IP"], spec.env["SERVER_MEMORY"]) == (
        "30001",
        "10.0.0.1",
        "128",
    )
    assert [(p.ip, p.port, p.primary) for p in spec.ports] == [("10.0.0.1", 30001, True)]
    assert spec.limits.memory_mb == 128 and spec.limits.pids == 64
    assert spec.stop.command == "stop" and spec.ready is not None
    assert spec.ready.pattern == "Server ready on port" and spec.binaries == ["sh"]

    [allocation] = await panel.allocations(node)
    assert str(allocation.server_id) == server["id"] and allocation.is_primary
    server_id = uuid.UUID(server["id"])
    assert await panel.count(ServerVariable, server_id=server_id) == 2
    assert await panel.count(Deployment, server_id=server_id) == 1


async def test_values_with_shell_syntax_stay_inert_in_the_command_and_config(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    node = await panel.node([30011, 30012])
    motd = "$(touch /tmp/pwned) `id` ; echo 'x' \"y\" $HOME"
    response = await player.post(
        "/api/v1/servers",
        json={"name": "T", "blueprint": "talky", "nodeId": str(node), "variables": {"MOTD": motd}},
    )
    assert response.status_code == 202, response.text
    [command] = await panel.commands_of(node)
    spec = command.payload_as(ServerSpec)
    script = spec.command[2]
    assert motd not in script and "$(touch" not in script
    assert spec.env["MOTD"] == motd and spec.env["QUERY_PORT"] == "30012"
    assert spec.config_files[0].set == {"motd": motd, "max-players": "10"}
    assert [(p.port, p.protocol, p.primary) for p in spec.ports] == [
        (30011, "tcp", True),
        (30012, "udp", False),
    ]
    # Run the rendered script in a real shell with the game swapped for printf: the value
    # arrives as one literal argument, nothing in it is executed.
    probe = script.replace("exec sh /game.sh", "printf '[%s]\\n'")
    out = subprocess.run(
        ["/bin/sh", "-c", probe], env=spec.env, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == ["[--motd]", f"[{motd}]", "[--players]", "[10]"]


HOSTILE_VARIABLES: list[tuple[dict[str, Any], str]] = [
    ({"WORLD_NAME": "no spaces!"}, "variables.WORLD_NAME"),
    ({"WORLD_NAME": "x" * 33}, "variables.WORLD_NAME"),
    ({"WORLD_NAME": ""}, "variables.WORLD_NAME"),
    ({"WORLD_NAME": "{{GAME_SCRIPT}}"}, "variables.WORLD_NAME"),
    ({"WORLD_NAME": "${GAME_SCRIPT}"}, "variables.WORLD_NAME"),
    ({"WORLD_NAME": "line\nbreak"}, "variables.WORLD_NAME"),
    ({"GAME_SCRIPT": "/bin/evil"}, "variables.GAME_SCRIPT"),
    ({"NOPE": "1"}, "variables.NOPE"),
    ({"BAD-NAME": "1"}, "variables"),
]


async def test_hostile_variables_are_422_at_their_field_and_leave_nothing(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    node = await panel.node([30021])
    for variables, field in HOSTILE_VARIABLES:
        response = await player.post(
            "/api/v1/servers",
            json={"name": "Bad", "blueprint": "test-game", "variables": variables},
        )
        assert response.status_code == 422, (variables, response.text)
        assert field in _fields(response), (variables, _fields(response))
    talky = await player.post(
        "/api/v1/servers",
        json={"name": "Bad", "blueprint": "talky", "variables": {"MAX_PLAYERS": "1e9"}},
    )
    assert talky.status_code == 422 and "variables.MAX_PLAYERS" in _fields(talky)
    await _nothing_left(panel, player, node)
    assert await panel.commands_of(node) == []


async def test_a_blueprint_without_a_startup_command_runs_its_images_entrypoint(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    node = await panel.node([30021])
    body = {"name": "Image", "blueprint": "entrypoint-only", "nodeId": str(node)}
    response = await player.post("/api/v1/servers", json=body)
    assert response.status_code == 202, response.text
    [command] = await panel.commands_of(node)
    spec = command.payload_as(ServerSpec)
    assert spec.command == [] and spec.binaries == []
    assert spec.env["SERVER_PORT"] == "30021"


async def test_unknown_blueprints_versions_and_absurd_resources_are_422(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    node = await panel.node([30031])
    base = {"name": "Bad", "blueprint": "test-game"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"blueprint": "no-such-game"}, "blueprint"),
        ({"blueprint": str(uuid.uuid4())}, "blueprint"),
        ({"blueprint": "x" * 129}, "blueprint"),
        ({"blueprint": "switched-off"}, "blueprint"),
        ({"blueprint": "open-quote"}, "blueprint"),
        ({"version": "9.9"}, "version"),
        ({"memoryMb": 10**12}, "memoryMb"),
        ({"memoryMb": 1}, "memoryMb"),
        ({"cpu": 0}, "cpu"),
        ({"diskMb": -5}, "diskMb"),
        ({"name": ""}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"nodeId": str(uuid.uuid4())}, "nodeId"),
        ({"allocationIds": ["not-a-uuid"]}, "allocationIds.0"),
    ]
    for change, field in cases:
        response = await player.post("/api/v1/servers", json={**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert field in _fields(response), (change, _fields(response))
    await _nothing_left(panel, player, node)


async def test_quotas_refuse_with_403_naming_the_quota(panel: ServersPanel) -> None:
    node = await panel.node([30041, 30042])
    body = {"name": "Q", "blueprint": "test-game", "nodeId": str(node)}
    no_servers = await panel.user(max_servers=0)
    refused = await no_servers.post("/api/v1/servers", json=body)
    assert refused.status_code == 403 and "Server quota" in refused.json()["error"]["detail"]
    small = await panel.user(max_memory_mb=200)
    assert (await small.post("/api/v1/servers", json=body)).status_code == 202
    second = await small.post("/api/v1/servers", json=body)
    assert second.status_code == 403 and "Memory quota" in second.json()["error"]["detail"]
    assert await panel.count(Server, owner_id=small.user_id) == 1
    refusals = await panel.count(
        AuditLog,
        user_id=small.user_id,
        action="server.create",
        status=AuditStatus.FAILURE,
    )
    assert refusals == 1
    cpu = await panel.user(max_cpu=40)
    too_much = await cpu.post("/api/v1/servers", json=body)
    assert too_much.status_code == 403 and "CPU quota" in too_much.json()["error"]["detail"]


async def test_explicit_nodes_and_ports_must_be_usable(panel: ServersPanel) -> None:
    player = await panel.user()
    mine = await panel.node([30051, 30052])
    other = await panel.node([30061])
    draining = await panel.node([30071], status=NodeStatus.DRAINING)
    offline = await panel.node([30081], status=NodeStatus.OFFLINE)
    base = {"name": "Placed", "blueprint": "test-game"}
    for node_id in (draining, offline):
        refused = await player.post("/api/v1/servers", json={**base, "nodeId": str(node_id)})
        assert refused.status_code == 422 and "nodeId" in _fields(refused)
    [foreign] = await panel.allocations(other)
    wrong_node = await player.post(
        "/api/v1/servers",
        json={**base, "nodeId": str(mine), "allocationIds": [str(foreign.id)]},
    )
    assert wrong_node.status_code == 422 and "allocationIds.0" in _fields(wrong_node)
    first, second = await panel.allocations(mine)
    chosen = {**base, "nodeId": str(mine), "allocationIds": [str(second.id)]}
    placed = await player.post("/api/v1/servers", json=chosen)
    assert placed.status_code == 202 and placed.json()["data"]["server"]["address"].endswith(
        ":30052"
    )
    taken = await player.post("/api/v1/servers", json=chosen)
    assert taken.status_code == 409 and "already in use" in taken.json()["error"]["detail"]
    twice = await player.post(
        "/api/v1/servers", json={**chosen, "allocationIds": [str(first.id), str(first.id)]}
    )
    assert twice.status_code == 422
    assert await panel.count(Server, owner_id=player.user_id) == 1
    assert [a.server_id is None for a in await panel.allocations(mine)] == [True, False]


async def test_only_admins_deploy_for_someone_else(panel: ServersPanel) -> None:
    node = await panel.node([30091, 30092])
    player, admin, friend = await panel.user(), await panel.user(Role.ADMIN), await panel.user()
    friend_id = str(friend.user_id)
    body = {"name": "Gift", "blueprint": "test-game", "nodeId": str(node), "ownerId": friend_id}
    assert (await player.post("/api/v1/servers", json=body)).status_code == 403
    given = await admin.post("/api/v1/servers", json=body)
    assert given.status_code == 202
    assert given.json()["data"]["server"]["ownerId"] == friend_id
    nobody = await admin.post("/api/v1/servers", json={**body, "ownerId": str(uuid.uuid4())})
    assert nobody.status_code == 422 and "ownerId" in _fields(nobody)


async def test_twenty_concurrent_deployments_for_the_last_port_book_it_once(
    panel: ServersPanel,
) -> None:
    node = await panel.node([30101], region="race-region")
    players = [await panel.user() for _ in range(20)]
    body = {"name": "Race", "blueprint": "test-game", "nodeId": str(node)}
    responses = await asyncio.gather(*(p.post("/api/v1/servers", json=body) for p in players))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 1, [r.text for r in responses if r.status_code >= 500]
    assert all(s in (409, 422) for s in statuses if s != 202), statuses
    assert await panel.count(Server, node_id=node) == 1
    [allocation] = await panel.allocations(node)
    winner = next(r for r in responses if r.status_code == 202).json()["data"]["server"]
    assert str(allocation.server_id) == winner["id"]
    assert len(await panel.commands_of(node)) == 1
    assert await panel.count(Allocation, server_id=uuid.UUID(winner["id"])) == 1


async def test_automatic_placement_prefers_the_region_then_free_memory(
    panel: ServersPanel,
) -> None:
    player = await panel.user()
    roomy = await panel.node([30121], memory_mb=900_000, region="auto-far")
    near = await panel.node([30131], memory_mb=800_000, region="auto-near")
    hidden = await panel.node([30141], memory_mb=990_000, region="auto-near", public=False)
    body = {"name": "Auto", "blueprint": "test-game"}
    placed = await player.post("/api/v1/servers", json={**body, "region": "auto-near"})
    assert placed.status_code == 202 and placed.json()["data"]["server"]["nodeId"] == str(near)
    anywhere = await player.post("/api/v1/servers", json=body)
    assert anywhere.status_code == 202 and anywhere.json()["data"]["server"]["nodeId"] == str(roomy)
    assert await panel.count(Server, node_id=hidden) == 0
    chosen = await player.post("/api/v1/servers", json={**body, "nodeId": str(hidden)})
    assert chosen.status_code == 422 and "nodeId" in _fields(chosen)
    admin = await panel.user(Role.ADMIN)
    private = await admin.post("/api/v1/servers", json={**body, "nodeId": str(hidden)})
    assert private.status_code == 202 and private.json()["data"]["server"]["nodeId"] == str(hidden)


async def test_concurrent_deployments_of_one_user_stay_within_the_server_quota(
    panel: ServersPanel,
) -> None:
    node = await panel.node(list(range(30151, 30161)))
    player = await panel.user(max_servers=2)
    body = {"name": "Many", "blueprint": "test-game", "nodeId": str(node)}
    responses = await asyncio.gather(
        *(player.post("/api/v1/servers", json=body) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202, 202] + [403] * 8, [r.text for r in responses if r.status_code >= 500]
    assert await panel.count(Server, owner_id=player.user_id) == 2


async def test_a_broker_outage_leaves_no_server_behind(panel: ServersPanel) -> None:
    player = await panel.user()
    node = await panel.node([30111])
    async with panel.app_with_broker_down(player) as down:
        response = await down.post(
            "/api/v1/servers",
            json={"name": "X", "blueprint": "test-game", "nodeId": str(node)},
        )
    assert response.status_code == 503, response.text
    await _nothing_left(panel, player, node)
    failed = await panel.count(
        AuditLog,
        user_id=player.user_id,
        action="server.create",
        status=AuditStatus.FAILURE,
    )
    assert failed == 1
