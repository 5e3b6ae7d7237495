"""Server pages: the list, the deploy wizard (through the real servers service), the overview
with power buttons, and delete — on the full app over ASGI with the in-process broker.

No daemon runs here: a deployment stays where the panel left it, and a test plays the daemon
by writing the deployment's progress and the server's status as the event consumer would.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.panel.db.enums import BlueprintSource, DeploymentStatus, Protocol, ServerStatus
from stellarstack.panel.db.models import (
    Allocation,
    Deployment,
    NodeCommand,
    Server,
    ServerVariable,
    Subuser,
    User,
)
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.service import save_blueprint
from stellarstack.settings import PanelSettings
from tests.panel.db.factories import make_node
from tests.panel.web.conftest import HOSTILE_NAME, Accounts, sign_in
from tests.panel.web.test_pages import assert_page

GAME_YAML = """\
slug: page-game
name: Page Game
description: A game with every kind of setting.
category: sandbox
docker: {image: "example/page-game:1"}
resources: {memory_mb: 512, cpu: 100, disk_mb: 1024}
ports:
  - {name: game, port: 27000, protocol: tcp}
variables:
  - {env: WORLD, name: World name, default: world, rules: "required|alpha_dash|max:32"}
  - {env: MODE, name: Mode, default: survival, rules: "required|in:survival,creative"}
  - {env: PVP, name: PvP, default: "true", rules: "required|boolean", field_type: boolean}
  - {env: SLOTS, name: Slots, default: "10", rules: "required|integer|between:1,100"}
  - {env: SECRET, name: Licence, default: "s3cret", user_viewable: false, rules: "string"}
startup:
  command: 'exec ./game --world {{WORLD}}'
  stop: {command: stop, timeout: 10}
versions:
  - {tag: "2.0", name: "2.0", recommended: true}
  - {tag: "1.9", name: "1.9 (old)"}
"""
GAME = "page-game"
VALID_FORM = {
    "name": "My world",
    "version": "2.0",
    "memory_mb": "512",
    "cpu": "100",
    "disk_mb": "1024",
    "var.WORLD": "overworld",
    "var.MODE": "creative",
    "var.PVP": "false",
    "var.SLOTS": "20",
    "node": "auto",
}


@pytest.fixture
def panel_settings(tmp_path: Path) -> PanelSettings:
    """Deletes wait briefly for a daemon that never answers here."""
    return PanelSettings(data_dir=tmp_path, max_body_bytes=64 * 1024, server_delete_wait=0.2)


async def _user(db: AsyncSession, email: str) -> User:
    found = await db.scalar(sa.select(User).where(User.email == email))
    assert found is not None
    return found


@pytest.fixture
async def world(panel_database: Database, accounts: Accounts) -> dict[str, uuid.UUID]:
    """An online node with ports, the page game, and a running server of the admin's."""
    async with panel_database.sessionmaker() as db:
        node = make_node("page-node")
        node.public_ip = "127.0.0.1"
        db.add(node)
        await db.flush()
        db.add_all(
            Allocation(node_id=node.id, ip="127.0.0.1", port=p, protocol=Protocol.TCP)
            for p in range(27000, 27006)
        )
        saved = await save_blueprint(
            db, BlueprintSpec.from_yaml(GAME_YAML), source=BlueprintSource.OPERATOR,
            source_ref=None, source_hash=None,
        )  # fmt: skip
        admin = await _user(db, accounts.admin_email)
        theirs = Server(
            name="Admin's world", owner_id=admin.id, node_id=node.id, blueprint_id=saved.row.id,
            memory_mb=512, disk_mb=1024, cpu_limit=100, status=ServerStatus.RUNNING,
        )  # fmt: skip
        db.add(theirs)
        await db.commit()
        return {"node": node.id, "blueprint": saved.row.id, "admins_server": theirs.id}


def assert_fragment(response: httpx.Response) -> str:
    """An htmx fragment: 200, HTML, no script of any kind."""
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in response.text and "<!doctype" not in response.text
    return response.text


async def _server(database: Database, name: str) -> Server | None:
    async with database.sessionmaker() as db:
        found: Server | None = await db.scalar(sa.select(Server).where(Server.name == name))
        return found


async def _deploy(client: httpx.AsyncClient, **changes: str) -> httpx.Response:
    return await client.post(f"/servers/new/{GAME}", data={**VALID_FORM, **changes})


async def _set_status(database: Database, server_id: uuid.UUID, status: ServerStatus) -> None:
    async with database.sessionmaker() as db:
        await db.execute(sa.update(Server).where(Server.id == server_id).values(status=status))
        await db.commit()


async def test_the_list_shows_only_the_users_own_servers_and_offers_to_deploy(
    web_client: httpx.AsyncClient, accounts: Accounts, world: dict[str, uuid.UUID]
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get("/servers"))
    assert "Admin&#39;s world" not in text and "Admin's world" not in text
    assert 'data-testid="deploy-cta"' in text and 'href="/servers/new"' in text

    assert (await _deploy(web_client)).status_code == 303
    text = assert_page(await web_client.get("/servers"))
    assert "My world" in text and "Admin" not in text.split("<tbody", 1)[1]
    rows = assert_fragment(await web_client.get("/servers/rows", headers={"hx-request": "true"}))
    assert "My world" in rows and 'data-status="installing"' in rows


async def test_another_users_server_is_a_404_page_everywhere(
    web_client: httpx.AsyncClient, accounts: Accounts, world: dict[str, uuid.UUID]
) -> None:
    await sign_in(web_client, accounts.user_email)
    theirs = world["admins_server"]
    for path in ("", "/status", "/deployment", "/deployment/progress", "/files", "/console"):
        response = await web_client.get(f"/servers/{theirs}{path}")
        assert response.status_code == 404, path
        assert "Admin&#39;s world" not in response.text
    for path in ("/power/stop", "/delete"):
        response = await web_client.post(f"/servers/{theirs}{path}", data={"confirm": "x"})
        assert response.status_code == 404, path
    async with web_client.stream("GET", "/servers/" + "0" * 12) as response:
        assert response.status_code == 404


async def test_step_one_lists_the_games_and_searches_them(
    web_client: httpx.AsyncClient, accounts: Accounts, world: dict[str, uuid.UUID]
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get("/servers/new"))
    assert f'href="/servers/new/{GAME}"' in text
    assert f'href="/servers/new/{GAME}"' in assert_page(await web_client.get("/servers/new?q=page"))
    text = assert_page(await web_client.get("/servers/new?q=%3Cscript%3E"))
    assert "No game matches" in text and "<script>" not in text.split("</head>", 1)[1]
    assert f"/servers/new/{GAME}" in assert_page(
        await web_client.get("/servers/new?category=sandbox")
    )


async def test_step_two_shows_defaults_versions_and_typed_variable_inputs(
    web_client: httpx.AsyncClient, accounts: Accounts, world: dict[str, uuid.UUID]
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get(f"/servers/new/{GAME}"))
    assert re.search(r'<option value="2.0" selected>2.0 \(recommended\)', text)
    assert 'name="memory_mb" type="number"' in text and 'value="512"' in text
    assert re.search(r'<select id="f-var-MODE" name="var.MODE"', text)
    assert 'type="checkbox" name="var.PVP" value="true" checked' in text
    assert re.search(r'name="var.SLOTS" type="number"[^>]*min="1" max="100"', text)
    assert "required|alpha_dash|max:32" in text  # the rules are shown
    assert "SECRET" not in text and "s3cret" not in text  # hidden variables stay hidden
    assert "page-node" in text and "6 free ports" in text
    assert (await web_client.get("/servers/new/no-such-game")).status_code == 404


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"var.WORLD": "bad world!"}, "var.WORLD", "WORLD"),
        ({"var.MODE": "hardcore"}, "var.MODE", "MODE"),
        ({"var.SLOTS": "1000"}, "var.SLOTS", "SLOTS"),
        ({"memory_mb": "1"}, "memory_mb", "greater than or equal to 64"),
        ({"name": "  "}, "name", "at least 1 character"),
        ({"version": "9.9"}, "version", "no version"),
        ({"node": "not-a-node"}, "node", "UUID"),
        ({"node": str(uuid.UUID(int=7))}, "node", "no node"),
    ],
)
async def test_a_refused_deploy_shows_the_error_beside_its_field_and_keeps_the_input(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    await sign_in(web_client, accounts.user_email)
    response = await _deploy(web_client, **{"name": "Kept <b>name</b>", **changes})
    text = assert_page(response, 422)
    error_id = field.replace(".", "-") + "-error"
    match = re.search(rf'id="{re.escape(error_id)}" role="alert">([^<]*)<', text)
    assert match, text[text.find("deploy-form") :][:3000]
    assert message.lower() in match.group(1).lower()
    assert "Kept &lt;b&gt;name&lt;/b&gt;" in text or field == "name"  # kept, and escaped
    assert 'value="overworld"' in text or field == "var.WORLD"
    async with panel_database.sessionmaker() as db:
        assert await db.scalar(sa.select(sa.func.count(Server.id))) == 1  # only the admin's


async def test_template_and_shell_syntax_in_a_variable_is_refused_or_kept_inert(
    web_client: httpx.AsyncClient, accounts: Accounts, world: dict[str, uuid.UUID]
) -> None:
    await sign_in(web_client, accounts.user_email)
    for hostile in ("{{SECRET}}", "$(id)", "`id`", "<script>alert(1)</script>"):
        response = await _deploy(web_client, **{"var.WORLD": hostile})
        text = assert_page(response, 422)
        assert "<script>alert(1)" not in text
        assert re.search(r'id="var-WORLD-error" role="alert">', text)


async def test_a_valid_deploy_queues_server_create_and_opens_the_progress_page(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    await sign_in(web_client, accounts.hostile_email)
    response = await _deploy(web_client, name=HOSTILE_NAME)
    assert response.status_code == 303, response.text[:2000]
    server = await _server(panel_database, HOSTILE_NAME)
    assert server is not None and server.status == ServerStatus.INSTALLING
    assert response.headers["location"] == f"/servers/{server.identifier}/deployment"
    async with panel_database.sessionmaker() as db:
        command = await db.scalar(sa.select(NodeCommand).where(NodeCommand.server_id == server.id))
        rows = await db.scalars(
            sa.select(ServerVariable).where(ServerVariable.server_id == server.id)
        )
        values = {row.key: row.value for row in rows}
    assert command is not None and command.type == "server.create"
    assert values.get("MODE") == "creative" and values.get("PVP") == "false"

    text = assert_page(await web_client.get(response.headers["location"]))
    assert HOSTILE_NAME not in text and "&lt;script&gt;" in text
    assert 'data-finished="false"' in text and 'hx-trigger="every 1s, live-refresh"' in text
    assert 'data-step="validating" data-state="done"' in text
    assert 'data-step="pulling_image" data-state="current"' in text


async def test_the_progress_fragment_follows_the_deployment_to_the_connect_address(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    await sign_in(web_client, accounts.user_email)
    await _deploy(web_client)
    server = await _server(panel_database, "My world")
    assert server is not None
    url = f"/servers/{server.identifier}/deployment/progress"
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(Deployment).where(Deployment.server_id == server.id)
            .values(step="installing", progress=55, status=DeploymentStatus.RUNNING)
        )  # fmt: skip
        await db.commit()
    text = assert_page(await web_client.get("/servers/" + server.identifier + "/deployment"))
    fragment = assert_fragment(await web_client.get(url, headers={"hx-request": "true"}))
    for part in (text, fragment):
        assert 'data-step="pulling_image" data-state="done"' in part
        assert 'data-step="installing" data-state="current"' in part
    await _set_status(panel_database, server.id, ServerStatus.RUNNING)
    fragment = assert_fragment(await web_client.get(url))
    assert 'data-finished="true"' in fragment and "hx-trigger" not in fragment
    assert "Your server is online" in fragment
    assert re.search(r'data-testid="connect-address">127\.0\.0\.1:270\d\d<', fragment)
    assert f'href="/servers/{server.identifier}/console"' in fragment


async def test_a_failed_install_shows_its_error_on_the_progress_page_and_the_overview(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    await sign_in(web_client, accounts.user_email)
    await _deploy(web_client)
    server = await _server(panel_database, "My world")
    assert server is not None
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(Server).where(Server.id == server.id)
            .values(status=ServerStatus.INSTALL_FAILED, install_error="<b>pull failed</b>: 404")
        )  # fmt: skip
        await db.commit()
    fragment = (await web_client.get(f"/servers/{server.identifier}/deployment/progress")).text
    assert 'data-testid="deploy-failed"' in fragment
    assert "&lt;b&gt;pull failed&lt;/b&gt;: 404" in fragment
    text = assert_page(await web_client.get(f"/servers/{server.identifier}"))
    assert 'data-testid="install-error"' in text and "<b>pull failed" not in text


async def test_power_buttons_follow_the_status_and_hide_without_permission(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    theirs = world["admins_server"]
    async with panel_database.sessionmaker() as db:
        player = await _user(db, accounts.user_email)
        db.add(Subuser(user_id=player.id, server_id=theirs, permissions=["server.view"]))
        await db.commit()
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get(f"/servers/{theirs}"))
    assert 'data-testid="no-power"' in text and "data-power=" not in text
    assert 'data-testid="danger-zone"' not in text
    response = await web_client.post(f"/servers/{theirs}/power/stop")
    assert response.status_code == 403

    await web_client.post("/auth/signout")
    await sign_in(web_client, accounts.admin_email)
    text = assert_page(await web_client.get(f"/servers/{theirs}"))
    assert re.search(r'data-power="start" disabled', text)
    assert re.search(r'data-power="stop">', text)
    assert 'data-testid="danger-zone"' in text


async def test_stop_is_sent_through_the_power_service_and_a_second_click_is_refused(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    theirs = world["admins_server"]
    await sign_in(web_client, accounts.admin_email)
    htmx = {"hx-request": "true"}
    first = await web_client.post(f"/servers/{theirs}/power/stop", headers=htmx)
    assert first.status_code == 200
    assert 'data-testid="power-notice">Stop sent' in first.text
    assert 'id="server-live"' in first.text and 'hx-swap-oob="true"' in first.text
    second = await web_client.post(f"/servers/{theirs}/power/restart", headers=htmx)
    assert "Another power action is in progress" in second.text
    async with panel_database.sessionmaker() as db:
        types = list(
            await db.scalars(sa.select(NodeCommand.type).where(NodeCommand.server_id == theirs))
        )
    assert types == ["server.stop"]
    plain = await web_client.post(f"/servers/{theirs}/power/kill")  # without htmx: a redirect
    assert plain.status_code == 303 and plain.headers["location"].startswith("/servers/")
    assert (await web_client.post(f"/servers/{theirs}/power/explode")).status_code == 404


async def test_delete_needs_the_typed_name_and_then_removes_the_server(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    theirs = world["admins_server"]
    await sign_in(web_client, accounts.admin_email)
    wrong = await web_client.post(f"/servers/{theirs}/delete", data={"confirm": "admin"})
    assert wrong.status_code == 303
    async with panel_database.sessionmaker() as db:
        assert await db.get(Server, theirs) is not None
    # No daemon answers here: a plain delete is refused, a forced one (admins) goes through.
    kept = await web_client.post(f"/servers/{theirs}/delete", data={"confirm": "Admin's world"})
    assert kept.status_code == 303 and kept.headers["location"].startswith("/servers/")
    async with panel_database.sessionmaker() as db:
        assert await db.get(Server, theirs) is not None
    gone = await web_client.post(
        f"/servers/{theirs}/delete", data={"confirm": "Admin's world", "force": "true"}
    )
    assert gone.status_code == 303 and gone.headers["location"] == "/servers"
    async with panel_database.sessionmaker() as db:
        assert await db.get(Server, theirs) is None
        freed = await db.scalar(
            sa.select(sa.func.count(Allocation.id)).where(Allocation.server_id.is_not(None))
        )
        assert freed == 0
    assert (await web_client.get(f"/servers/{theirs}")).status_code == 404


async def test_a_suspended_server_shows_why_and_every_power_button_is_disabled(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    theirs = world["admins_server"]
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(Server).where(Server.id == theirs).values(
                status=ServerStatus.SUSPENDED, suspend_reason="<i>unpaid</i>",
                suspended_at=sa.func.now(),
            )
        )  # fmt: skip
        await db.commit()
    await sign_in(web_client, accounts.admin_email)
    text = assert_fragment(await web_client.get(f"/servers/{theirs}/status"))
    assert "Suspended: &lt;i&gt;unpaid&lt;/i&gt;" in text
    assert len(re.findall(r'data-power="\w+" disabled', text)) == 4
    refused = await web_client.post(
        f"/servers/{theirs}/power/start", headers={"hx-request": "true"}
    )
    assert "suspended" in refused.text and 'data-testid="power-notice"' in refused.text


async def test_the_dashboard_counts_the_users_servers_and_lists_them_with_status(
    web_client: httpx.AsyncClient,
    accounts: Accounts,
    world: dict[str, uuid.UUID],
    panel_database: Database,
) -> None:
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get("/dashboard"))
    assert 'data-testid="stat-servers">0<' in text and "Admin" not in text.split("Your servers")[1]

    assert (await _deploy(web_client)).status_code == 303
    mine = await _server(panel_database, "My world")
    assert mine is not None
    await _set_status(panel_database, mine.id, ServerStatus.RUNNING)
    text = assert_page(await web_client.get("/dashboard"))
    assert 'data-testid="stat-servers">1<' in text and 'data-testid="stat-running">1<' in text
    assert "My world" in text and 'data-status="running"' in text
