"""Node administration over the API: list, read, update, statuses, rotation, deletion."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from stellarstack.panel.db.models import Node
from stellarstack.panel.domain.nodes.tokens import token_hash
from stellarstack.panel.domain.nodes.versions import check_compatibility, parse_version
from tests.panel.nodes.conftest import NodePanel, registration_body


async def new_node(panel: NodePanel, name: str) -> dict[str, str]:
    token = await panel.token(name)
    response = await panel.anonymous.post(
        "/api/v1/nodes/register", json=registration_body(), headers={"X-Registration-Token": token}
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def test_admins_list_and_read_nodes_players_cannot(sqlite_panel: NodePanel) -> None:
    node = await new_node(sqlite_panel, "list-me")
    listed = await sqlite_panel.admin.get("/api/v1/nodes", params={"perPage": 200})
    assert listed.status_code == 200
    names = [n["name"] for n in listed.json()["data"]]
    assert "list-me" in names and listed.json()["meta"]["total"] >= 1
    one = (await sqlite_panel.admin.get(f"/api/v1/nodes/{node['nodeId']}")).json()["data"]
    assert one["status"] == "starting" and one["versionCompatible"] is True
    assert "apiTokenHash" not in one and "api_token_hash" not in str(one)
    for path in ["/api/v1/nodes", f"/api/v1/nodes/{node['nodeId']}"]:
        assert (await sqlite_panel.player.get(path)).status_code == 403
        assert (await sqlite_panel.anonymous.get(path)).status_code == 401


async def test_unknown_and_malformed_node_ids_are_404(sqlite_panel: NodePanel) -> None:
    for node_id in [str(uuid.uuid4()), "not-a-uuid", "..%2f..%2fetc", "1 OR 1=1"]:
        response = await sqlite_panel.admin.get(f"/api/v1/nodes/{node_id}")
        assert response.status_code == 404, node_id


async def test_admins_drain_pause_and_reactivate_a_node(sqlite_panel: NodePanel) -> None:
    node_id = (await new_node(sqlite_panel, "drain-me"))["nodeId"]
    url = f"/api/v1/nodes/{node_id}"
    for wanted, shown in [("draining", "draining"), ("maintenance", "maintenance"),
                          ("active", "offline")]:  # fmt: skip
        response = await sqlite_panel.admin.patch(url, json={"status": wanted})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["status"] == shown
    for bad in ["online", "unhealthy", "<b>x</b>"]:
        assert (await sqlite_panel.admin.patch(url, json={"status": bad})).status_code == 422


async def test_updates_change_fields_and_refuse_a_taken_name(sqlite_panel: NodePanel) -> None:
    await new_node(sqlite_panel, "taken-name")
    node_id = (await new_node(sqlite_panel, "rename-me"))["nodeId"]
    url = f"/api/v1/nodes/{node_id}"
    response = await sqlite_panel.admin.patch(
        url, json={"name": "renamed", "fqdn": "Node.Example.COM", "maxServers": 9, "public": False}
    )
    data = response.json()["data"]
    assert (data["name"], data["fqdn"], data["maxServers"], data["public"]) == (
        "renamed", "node.example.com", 9, False,
    )  # fmt: skip
    clash = await sqlite_panel.admin.patch(url, json={"name": "taken-name"})
    assert clash.status_code == 409
    for bad in [{"fqdn": "bad host/.."}, {"port": 0}, {"region": "x y"}, {"name": ""}]:
        assert (await sqlite_panel.admin.patch(url, json=bad)).status_code == 422, bad


async def test_a_mismatched_daemon_version_is_flagged(sqlite_panel: NodePanel) -> None:
    node_id = (await new_node(sqlite_panel, "old-daemon"))["nodeId"]
    async with sqlite_panel.database.sessionmaker() as db:
        await db.execute(
            sa.update(Node).where(Node.id == uuid.UUID(node_id)).values(daemon_version="7.3.0")
        )
        await db.commit()
    data = (await sqlite_panel.admin.get(f"/api/v1/nodes/{node_id}")).json()["data"]
    assert data["versionCompatible"] is False
    assert "7.3.0" in data["versionMessage"]


async def test_rotation_issues_a_new_token_and_forgets_the_old(sqlite_panel: NodePanel) -> None:
    node = await new_node(sqlite_panel, "rotate-me")
    response = await sqlite_panel.admin.post(f"/api/v1/nodes/{node['nodeId']}/token")
    assert response.status_code == 200
    new_token = response.json()["data"]["apiToken"]
    assert new_token.startswith("strk_node_") and new_token != node["apiToken"]
    async with sqlite_panel.database.sessionmaker() as db:
        stored = await db.get(Node, uuid.UUID(node["nodeId"]))
    assert stored is not None and stored.api_token_hash == token_hash(new_token)
    assert (
        await sqlite_panel.player.post(f"/api/v1/nodes/{node['nodeId']}/token")
    ).status_code == 403


async def test_deleting_a_node_removes_it_with_its_allocations(sqlite_panel: NodePanel) -> None:
    node_id = (await new_node(sqlite_panel, "delete-me"))["nodeId"]
    url = f"/api/v1/nodes/{node_id}"
    added = await sqlite_panel.admin.post(
        f"{url}/allocations", json={"ip": "10.0.0.1", "ports": ["30000-30009"]}
    )
    assert added.status_code == 201
    assert (await sqlite_panel.player.delete(url)).status_code == 403
    assert (await sqlite_panel.admin.delete(url)).status_code == 204
    assert (await sqlite_panel.admin.get(url)).status_code == 404
    assert (await sqlite_panel.admin.get(f"{url}/allocations")).status_code == 404


async def test_servers_and_stats_of_a_new_node(sqlite_panel: NodePanel) -> None:
    node_id = (await new_node(sqlite_panel, "stats-me"))["nodeId"]
    servers = await sqlite_panel.admin.get(f"/api/v1/nodes/{node_id}/servers")
    assert servers.status_code == 200 and servers.json()["data"] == []
    stats = (await sqlite_panel.admin.get(f"/api/v1/nodes/{node_id}/stats")).json()["data"]
    assert stats["metrics"] is None and stats["lastHeartbeatAt"] is None


def test_the_panel_accepts_daemons_one_minor_version_either_side() -> None:
    assert check_compatibility("1.2.0", "1.2.7").compatible
    assert check_compatibility("1.2.0", "1.1.0").compatible
    assert check_compatibility("1.2.0", "1.3.5").compatible
    assert check_compatibility("v1.2.3", "1.3.0-rc1").compatible
    for daemon in ["1.0.9", "1.4.0", "2.2.0", "0.2.0", "banana", "1", "1.2.3; rm -rf /"]:
        result = check_compatibility("1.2.0", daemon)
        assert not result.compatible, daemon
        assert result.message
    assert check_compatibility("1.2.0", None).compatible  # not reported yet: nothing to flag
    assert parse_version("1.2") == (1, 2, 0)
    assert parse_version("x1.2") is None
