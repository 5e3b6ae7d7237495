"""Allocations: IP + ports and ranges, validated, at most 1000 per call, no duplicates, atomic."""

from __future__ import annotations

import pytest

from stellarstack.panel.domain.nodes.allocations import parse_ports
from stellarstack.panel.errors import ValidationFailed
from tests.panel.nodes.conftest import NodePanel, registration_body


async def node_url(panel: NodePanel, name: str) -> str:
    token = await panel.token(name)
    response = await panel.anonymous.post(
        "/api/v1/nodes/register", json=registration_body(), headers={"X-Registration-Token": token}
    )
    return f"/api/v1/nodes/{response.json()['data']['nodeId']}/allocations"


async def test_ports_and_ranges_are_added_and_listed(engine_panel: NodePanel) -> None:
    url = await node_url(engine_panel, "alloc-1")
    response = await engine_panel.admin.post(
        url, json={"ip": "192.0.2.10", "ports": ["25565-25570", 27015, " 30000 "], "notes": "mc"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["created"] == 8
    listed = (await engine_panel.admin.get(url)).json()["data"]
    assert [a["port"] for a in listed] == [25565, 25566, 25567, 25568, 25569, 25570, 27015, 30000]
    assert {a["ip"] for a in listed} == {"192.0.2.10"} and listed[0]["serverId"] is None
    udp = await engine_panel.admin.post(
        url, json={"ip": "192.0.2.10", "ports": ["27015"], "protocol": "udp"}
    )
    assert udp.status_code == 201  # same port, other protocol


async def test_ports_the_node_already_has_fail_the_whole_call(engine_panel: NodePanel) -> None:
    url = await node_url(engine_panel, "alloc-2")
    assert (
        await engine_panel.admin.post(url, json={"ip": "10.1.1.1", "ports": ["100-110"]})
    ).status_code == 201
    clash = await engine_panel.admin.post(url, json={"ip": "10.1.1.1", "ports": ["108-120"]})
    assert clash.status_code == 409
    assert "108, 109, 110" in clash.json()["error"]["detail"]
    assert len((await engine_panel.admin.get(url)).json()["data"]) == 11  # nothing half-added


async def test_overlapping_ranges_in_one_call_are_refused(sqlite_panel: NodePanel) -> None:
    url = await node_url(sqlite_panel, "alloc-3")
    response = await sqlite_panel.admin.post(
        url, json={"ip": "10.0.0.3", "ports": ["1000-1010", "1005", "1010-1020"]}
    )
    assert response.status_code == 422
    assert (
        "1005" in str(response.json()["error"]) and "overlap" in response.json()["error"]["detail"]
    )


async def test_bad_ips_and_ports_get_field_errors(sqlite_panel: NodePanel) -> None:
    url = await node_url(sqlite_panel, "alloc-4")
    cases = [
        ({"ip": "999.1.1.1", "ports": ["1"]}, "ip"),
        ({"ip": "localhost", "ports": ["1"]}, "ip"),
        ({"ip": "<script>", "ports": ["1"]}, "ip"),
        ({"ip": "224.0.0.1", "ports": ["1"]}, "ip"),
        ({"ip": "10.0.0.4", "ports": ["0"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["65536"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["abc"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["2000-1000"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["1-2-3"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["1e3"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["-5"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["80", "${jndi:x}"]}, "ports.1"),
        ({"ip": "10.0.0.4", "ports": ["1-1001"]}, "ports.0"),
        ({"ip": "10.0.0.4", "ports": ["1-600", "1000-1500"]}, "ports.1"),
        ({"ip": "10.0.0.4", "ports": []}, "ports"),
        ({"ip": "10.0.0.4", "ports": ["1"] * 101}, "ports"),
    ]
    for body, field in cases:
        response = await sqlite_panel.admin.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        fields = [e["field"] for e in response.json()["error"]["errors"]]
        assert field in fields, (body, fields)
    assert (await sqlite_panel.admin.get(url)).json()["data"] == []


async def test_a_thousand_ports_is_the_limit_and_ipv6_is_canonical(sqlite_panel: NodePanel) -> None:
    url = await node_url(sqlite_panel, "alloc-5")
    response = await sqlite_panel.admin.post(
        url, json={"ip": "2001:DB8:0::1", "ports": ["40000-40999"]}
    )
    assert response.status_code == 201
    assert response.json()["data"]["allocations"][0]["ip"] == "2001:db8::1"


async def test_free_allocations_can_be_deleted_by_admins_only(sqlite_panel: NodePanel) -> None:
    url = await node_url(sqlite_panel, "alloc-6")
    created = (
        await sqlite_panel.admin.post(url, json={"ip": "10.0.0.6", "ports": ["7777"]})
    ).json()
    allocation_id = created["data"]["allocations"][0]["id"]
    assert (
        await sqlite_panel.player.post(url, json={"ip": "10.0.0.6", "ports": ["1"]})
    ).status_code == 403
    assert (await sqlite_panel.player.delete(f"{url}/{allocation_id}")).status_code == 403
    assert (await sqlite_panel.admin.delete(f"{url}/{allocation_id}")).status_code == 204
    assert (await sqlite_panel.admin.delete(f"{url}/{allocation_id}")).status_code == 404
    other = await node_url(sqlite_panel, "alloc-7")
    theirs = (await sqlite_panel.admin.post(other, json={"ip": "10.0.0.7", "ports": ["1"]})).json()
    cross = await sqlite_panel.admin.delete(f"{url}/{theirs['data']['allocations'][0]['id']}")
    assert cross.status_code == 404  # another node's allocation is not reachable through this one


def test_parse_ports_expands_and_sorts() -> None:
    assert parse_ports(["3-5", 1, "2"]) == [1, 2, 3, 4, 5]
    with pytest.raises(ValidationFailed):
        parse_ports([True])  # type: ignore[list-item]
