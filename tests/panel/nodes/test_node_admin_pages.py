"""Node pages over ASGI: list with live rows, add node with its install command, detail forms."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa

from stellarstack.panel.db.models import Node
from tests.panel.nodes.conftest import NodePanel, registration_body
from tests.support.services import free_port

HTML = {"accept": "text/html"}
HOSTILE = "<script>alert(1)</script>"


async def test_adding_a_node_shows_the_install_command_once(sqlite_panel: NodePanel) -> None:
    form = await sqlite_panel.admin.get("/nodes/new", headers=HTML)
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    added = await sqlite_panel.admin.post(
        "/nodes/new", data={"name": HOSTILE, "region": "eu", "max_servers": "5", "csrf_token": "x"},
        headers=HTML,
    )  # fmt: skip
    assert added.status_code == 200, added.text
    assert re.search(r"curl -fsSL .*strk_reg_[A-Za-z0-9_-]+", added.text)
    assert HOSTILE not in added.text and "&lt;script&gt;" in added.text
    bad = await sqlite_panel.admin.post("/nodes/new", data={"name": ""}, headers=HTML)
    assert bad.status_code == 422 and "flash-error" in bad.text


async def test_the_list_and_its_polled_rows_show_registered_nodes(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("page-node")
    await sqlite_panel.anonymous.post(
        "/api/v1/nodes/register", json=registration_body(), headers={"X-Registration-Token": token}
    )
    page = await sqlite_panel.admin.get("/nodes", headers=HTML)
    assert page.status_code == 200 and 'hx-trigger="every 5s"' in page.text
    rows = await sqlite_panel.admin.get("/nodes/rows", headers=HTML)
    assert "page-node" in rows.text and "Starting" in rows.text and "<html" not in rows.text
    assert (await sqlite_panel.player.get("/nodes", headers=HTML)).status_code == 403


async def test_the_detail_page_adds_ports_and_changes_status(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("detail-node")
    registered = await sqlite_panel.anonymous.post(
        "/api/v1/nodes/register", json=registration_body(), headers={"X-Registration-Token": token}
    )
    url = f"/nodes/{registered.json()['data']['nodeId']}"
    page = await sqlite_panel.admin.get(url, headers=HTML)
    assert page.status_code == 200 and 'id="node-chart"' in page.text
    added = await sqlite_panel.admin.post(
        f"{url}/allocations", data={"ip": "10.9.9.9", "ports": "25565, 27015-27016"}, headers=HTML
    )
    assert added.status_code == 303 and added.headers["location"] == url
    page = await sqlite_panel.admin.get(url, headers=HTML)
    assert "27016" in page.text and "3 port(s)" in page.text
    refused = await sqlite_panel.admin.post(
        f"{url}/allocations", data={"ip": "10.9.9.9", "ports": "25565"}, headers=HTML
    )
    assert refused.status_code == 303  # back to the page with an error flash
    drained = await sqlite_panel.admin.post(
        f"{url}/status", data={"status": "draining"}, headers=HTML
    )
    assert drained.status_code == 303
    assert "Draining" in (await sqlite_panel.admin.get(url, headers=HTML)).text
    assert (await sqlite_panel.admin.get("/nodes/not-a-node", headers=HTML)).status_code == 404


async def test_the_detail_page_asks_the_daemon_through_the_panel_client(
    sqlite_panel: NodePanel,
) -> None:
    token = await sqlite_panel.token(HOSTILE)
    registered = await sqlite_panel.anonymous.post(
        "/api/v1/nodes/register", json=registration_body(), headers={"X-Registration-Token": token}
    )
    node_id = registered.json()["data"]["nodeId"]
    async with sqlite_panel.database.sessionmaker() as db:
        await db.execute(
            sa.update(Node)
            .where(Node.id == uuid.UUID(node_id))
            .values(scheme="https", fqdn="127.0.0.1", port=free_port())
        )
        await db.commit()
    page = await sqlite_panel.admin.get(f"/nodes/{node_id}", headers=HTML)
    assert f'hx-get="/nodes/{node_id}/daemon"' in page.text
    answer = await sqlite_panel.admin.get(f"/nodes/{node_id}/daemon", headers=HTML)
    assert answer.status_code == 200 and "<html" not in answer.text
    assert "is not answering" in answer.text
    assert HOSTILE not in answer.text and "&lt;script&gt;" in answer.text
    assert (
        await sqlite_panel.player.get(f"/nodes/{node_id}/daemon", headers=HTML)
    ).status_code == 403
    missing = await sqlite_panel.admin.get(f"/nodes/{uuid.uuid4()}/daemon", headers=HTML)
    assert missing.status_code == 404
