"""The Settings tab of a server (`/servers/{id}/settings`) on the full app over ASGI.

Saving goes through the real servers service (`lifecycle.update_server`), reinstall through
`power.request_reinstall` onto the in-process broker, suspend through `lifecycle`. No daemon
runs: a test plays it by writing the server's status as the event consumer would.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
import sqlalchemy as sa

from stellarstack.panel.db.enums import NodeStatus, ServerStatus
from stellarstack.panel.db.models import (
    AuditLog,
    Node,
    NodeCommand,
    Server,
    ServerVariable,
    Subuser,
    User,
)
from stellarstack.panel.db.session import Database
from tests.panel.web import test_server_pages as server_pages
from tests.panel.web.conftest import HOSTILE_NAME, Accounts, sign_in
from tests.panel.web.test_pages import assert_page
from tests.panel.web.test_server_pages import (
    _deploy,
    _server,
    _set_status,
    _user,
    assert_fragment,
)

World = dict[str, uuid.UUID]
# The server pages' fixtures: an online node with ports, the page game, the admin's server.
panel_settings = server_pages.panel_settings
world = server_pages.world


async def _my_server(client: httpx.AsyncClient, database: Database) -> Server:
    """The player's own server, deployed through the wizard and then RUNNING."""
    assert (await _deploy(client)).status_code == 303
    server = await _server(database, "My world")
    assert server is not None
    await _set_status(database, server.id, ServerStatus.RUNNING)
    return server


async def _fresh(database: Database, server_id: uuid.UUID) -> Server:
    async with database.sessionmaker() as db:
        server = await db.get(Server, server_id)
        assert server is not None
        return server


async def _variables(database: Database, server_id: uuid.UUID) -> dict[str, str]:
    async with database.sessionmaker() as db:
        rows = await db.scalars(
            sa.select(ServerVariable).where(ServerVariable.server_id == server_id)
        )
        return {row.key: row.value for row in rows}


async def _commands(database: Database, server_id: uuid.UUID) -> list[str]:
    async with database.sessionmaker() as db:
        query = sa.select(NodeCommand.type).where(NodeCommand.server_id == server_id)
        return list(await db.scalars(query.order_by(NodeCommand.created_at)))


def _general(server: Server, **changes: str) -> dict[str, str]:
    form = {"name": server.name, "description": "", "memory_mb": "512", "cpu": "100"}
    return {**form, "disk_mb": "1024", **changes}


def _error(text: str, field: str) -> str:
    match = re.search(rf'id="{re.escape(field)}-error" role="alert">([^<]*)<', text)
    assert match, text[text.find("server-settings") :][:3000]
    return match.group(1)


@pytest.fixture
async def player(
    web_client: httpx.AsyncClient, accounts: Accounts, world: World, panel_database: Database
) -> Server:
    """The signed-in player and their running server."""
    await sign_in(web_client, accounts.user_email)
    return await _my_server(web_client, panel_database)


async def test_the_settings_tab_shows_current_values_variables_versions_and_notes(
    web_client: httpx.AsyncClient, player: Server
) -> None:
    text = assert_page(await web_client.get(f"/servers/{player.identifier}/settings"))
    assert f'href="/servers/{player.identifier}/settings" aria-current="page"' in text
    assert 'id="s-name" name="name" type="text" value="My world"' in text
    assert 'name="memory_mb" type="number"' in text and 'value="512"' in text
    assert "New limits apply the next time the server (re)starts." in text
    assert 'data-testid="version-note">The version&#39;s image and settings apply' in text
    assert re.search(r'<option value="2.0" selected>2.0 \(recommended\)', text)
    assert re.search(r'name="var.WORLD" type="text" value="overworld"', text)
    assert re.search(r'<select id="s-var-MODE" name="var.MODE"', text)
    assert "required|alpha_dash|max:32" in text
    assert "SECRET" not in text and "s3cret" not in text  # hidden variables stay hidden
    assert 'data-testid="settings-suspend"' not in text  # admins only
    assert 'data-testid="reinstall-submit"' in text and 'data-status="running"' in text
    forms = re.findall(
        r'<form [^>]*action="/servers/\w+/settings/(\w+)#\1"[^>]*>\s*<input ([^>]*)>', text
    )
    assert [name for name, _ in forms] == ["general", "variables", "version", "reinstall"]
    assert all('name="csrf_token"' in field for _, field in forms)
    fragment = assert_fragment(
        await web_client.get(f"/servers/{player.identifier}/settings/status")
    )
    assert 'data-status="running"' in fragment and "hx-trigger" in fragment


async def test_saving_name_description_and_resources_updates_the_server(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    form = _general(player, name=HOSTILE_NAME, description="{{SECRET}} $(id)", memory_mb="768")
    response = await web_client.post(f"/servers/{player.identifier}/settings/general", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == f"/servers/{player.identifier}/settings#top"
    saved = await _fresh(panel_database, player.id)
    assert (saved.name, saved.description, saved.memory_mb) == (
        HOSTILE_NAME,
        "{{SECRET}} $(id)",
        768,
    )
    text = assert_page(await web_client.get(response.headers["location"]))
    assert "Settings saved." in text and "(re)starts" in text
    assert HOSTILE_NAME not in text and "&lt;script&gt;alert(" in text
    assert 'data-testid="server-name">&lt;script&gt;' in text  # the header follows
    async with panel_database.sessionmaker() as db:
        audited = await db.scalar(
            sa.select(AuditLog.details).where(
                AuditLog.action == "server.update", AuditLog.resource_id == str(player.id)
            )
        )
    assert audited is not None and audited["resources"]["memoryMb"] == 768


@pytest.mark.parametrize(
    ("changes", "field", "message", "status"),
    [
        ({"memory_mb": "99999999"}, "memory_mb", "less than or equal", 422),
        ({"cpu": "5"}, "cpu", "greater than or equal to 10", 422),
        ({"disk_mb": "lots"}, "disk_mb", "valid integer", 422),
        ({"name": "   "}, "name", "at least 1 character", 422),
        ({"name": "tab\there"}, "name", "control characters", 422),
        ({"memory_mb": "60000"}, "", "cannot hold these resources", 409),
    ],
)
async def test_a_refused_change_shows_why_beside_the_field_and_keeps_the_input(
    web_client: httpx.AsyncClient,
    player: Server,
    panel_database: Database,
    changes: dict[str, str],
    field: str,
    message: str,
    status: int,
) -> None:
    form = _general(player, description="Kept <b>notes</b>", **changes)
    response = await web_client.post(f"/servers/{player.identifier}/settings/general", data=form)
    text = assert_page(response, status)
    if field:
        assert message in _error(text, field)
    else:
        assert re.search(rf'data-testid="form-error">[^<]*{message}', text)
    assert "Kept &lt;b&gt;notes&lt;/b&gt;</textarea>" in text  # kept, and escaped
    kept = changes.get("memory_mb", "512")
    assert re.search(rf'id="s-memory" name="memory_mb" [^>]*value="{kept}"', text)
    saved = await _fresh(panel_database, player.id)
    assert (saved.name, saved.description, saved.memory_mb) == ("My world", None, 512)


async def test_variables_save_through_their_rules_and_hostile_values_are_refused(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    url = f"/servers/{player.identifier}/settings/variables"
    form = {"var.WORLD": "new_world", "var.MODE": "survival", "var.PVP": "true"}
    form |= {"var.SLOTS": "30", "var.SECRET": "stolen"}  # hidden: ignored
    assert (await web_client.post(url, data=form)).status_code == 303
    values = await _variables(panel_database, player.id)
    assert values["WORLD"] == "new_world" and values["SLOTS"] == "30"
    assert values["MODE"] == "survival" and values.get("SECRET") != "stolen"

    for hostile, field in [
        ("{{SECRET}}", "var.WORLD"),
        ("${SECRET}", "var.WORLD"),
        ("$(id)", "var.WORLD"),
        ("`id`; rm -rf /", "var.WORLD"),
        ("<script>alert(1)</script>", "var.WORLD"),
    ]:
        response = await web_client.post(url, data={**form, "var.WORLD": hostile})
        text = assert_page(response, 422)
        assert "world" in _error(text, field.replace(".", "-")).lower()
        assert "<script>alert(1)" not in text
    text = assert_page(await web_client.post(url, data={**form, "var.SLOTS": "1000"}), 422)
    assert "between 1 and 100" in _error(text, "var-SLOTS") and 'value="new_world"' in text
    assert (await _variables(panel_database, player.id))["WORLD"] == "new_world"


async def test_a_version_change_is_saved_for_the_next_reinstall(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    url = f"/servers/{player.identifier}/settings/version"
    refused = assert_page(await web_client.post(url, data={"version": "9.9"}), 422)
    assert "no version &#39;9.9&#39;" in _error(refused, "version")
    response = await web_client.post(url, data={"version": "1.9"})
    assert response.status_code == 303
    assert (await _fresh(panel_database, player.id)).version_tag == "1.9"
    text = assert_page(await web_client.get(response.headers["location"]))
    assert "Version set to 1.9. The version&#39;s image and settings apply at the next" in text
    assert re.search(r'<option value="1.9" selected>', text)


async def test_reinstall_needs_confirming_then_queues_server_reinstall_once(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    url = f"/servers/{player.identifier}/settings/reinstall"
    unconfirmed = await web_client.post(url, data={})
    assert unconfirmed.status_code == 303
    assert "server.reinstall" not in await _commands(panel_database, player.id)
    assert "Tick the box" in (await web_client.get(unconfirmed.headers["location"])).text

    assert (await web_client.post(url, data={"confirm": "yes"})).status_code == 303
    assert (await _fresh(panel_database, player.id)).status == ServerStatus.REINSTALLING
    assert (await _commands(panel_database, player.id)).count("server.reinstall") == 1
    text = assert_page(await web_client.get(f"/servers/{player.identifier}/settings"))
    assert "Reinstalling My world" in text and 'data-status="reinstalling"' in text

    again = await web_client.post(url, data={"confirm": "yes"})
    text = (await web_client.get(again.headers["location"])).text
    assert "still installing" in text or "Another power action" in text
    assert (await _commands(panel_database, player.id)).count("server.reinstall") == 1


async def test_an_admin_suspends_with_a_reason_and_unsuspends(
    web_client: httpx.AsyncClient, accounts: Accounts, world: World, panel_database: Database
) -> None:
    theirs = world["admins_server"]
    await sign_in(web_client, accounts.admin_email)
    base = f"/servers/{theirs}/settings"
    text = assert_page(await web_client.get(base))
    assert 'data-testid="settings-suspend"' in text and 'data-testid="suspend-submit"' in text
    response = await web_client.post(f"{base}/suspend", data={"reason": "<i>unpaid</i>"})
    assert response.status_code == 303
    server = await _fresh(panel_database, theirs)
    assert server.status == ServerStatus.SUSPENDED and server.suspend_reason == "<i>unpaid</i>"
    assert await _commands(panel_database, theirs) == ["server.stop"]
    text = assert_page(await web_client.get(base))
    assert "Suspended: &lt;i&gt;unpaid&lt;/i&gt;" in text and "<i>unpaid" not in text
    assert 'data-testid="unsuspend-submit"' in text
    assert re.search(r'data-testid="reinstall-submit" disabled', text)
    refused = await web_client.post(f"{base}/reinstall", data={"confirm": "yes"})
    assert "suspended" in (await web_client.get(refused.headers["location"])).text
    assert (
        await web_client.post(f"{base}/suspend", data={"reason": "x" * 1025})
    ).status_code == 303

    assert (await web_client.post(f"{base}/unsuspend")).status_code == 303
    server = await _fresh(panel_database, theirs)
    assert server.status == ServerStatus.OFFLINE and server.suspended_at is None


async def test_a_user_cannot_suspend_even_their_own_server(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    base = f"/servers/{player.identifier}/settings"
    assert (await web_client.post(f"{base}/suspend", data={"reason": "me"})).status_code == 403
    assert (await web_client.post(f"{base}/unsuspend")).status_code == 403
    assert (await _fresh(panel_database, player.id)).status == ServerStatus.RUNNING
    async with panel_database.sessionmaker() as db:
        refusal = await db.scalar(
            sa.select(AuditLog.error).where(AuditLog.action == "server.suspend")
        )
    assert refusal is not None and "administrators" in refusal


async def test_another_users_server_is_a_404_on_every_settings_route(
    web_client: httpx.AsyncClient, accounts: Accounts, world: World, panel_database: Database
) -> None:
    await sign_in(web_client, accounts.user_email)
    theirs = world["admins_server"]
    for path in ("", "/status"):
        response = await web_client.get(f"/servers/{theirs}/settings{path}")
        assert response.status_code == 404 and "Admin&#39;s world" not in response.text
    for path in ("general", "variables", "version", "reinstall", "suspend", "unsuspend"):
        data = {"name": "stolen", "confirm": "yes", "version": "1.9", "reason": "x"}
        assert (
            await web_client.post(f"/servers/{theirs}/settings/{path}", data=data)
        ).status_code == 404
    for ref in ("../../admin", "%2e%2e%2f", "x" * 65, "a%00b"):
        assert (await web_client.get(f"/servers/{ref}/settings")).status_code in (404, 400)
    server = await _fresh(panel_database, theirs)
    assert server.name == "Admin's world" and server.status == ServerStatus.RUNNING


async def test_a_subuser_sees_a_read_only_page_and_gets_403_for_every_change(
    web_client: httpx.AsyncClient, accounts: Accounts, world: World, panel_database: Database
) -> None:
    theirs = world["admins_server"]
    async with panel_database.sessionmaker() as db:
        player = await _user(db, accounts.user_email)
        db.add(Subuser(user_id=player.id, server_id=theirs, permissions=["server.view"]))
        await db.commit()
    await sign_in(web_client, accounts.user_email)
    text = assert_page(await web_client.get(f"/servers/{theirs}/settings"))
    assert 'data-testid="general-readonly"' in text and 'data-testid="save-general"' not in text
    assert "reinstall-submit" not in text and "settings-variables" not in text
    assert "settings-suspend" not in text
    for path in ("general", "variables", "version", "reinstall"):
        data = {"name": "stolen", "confirm": "yes", "version": "1.9", "var.WORLD": "x"}
        response = await web_client.post(f"/servers/{theirs}/settings/{path}", data=data)
        assert response.status_code == 403, path
    server = await _fresh(panel_database, theirs)
    assert server.name == "Admin's world" and server.status == ServerStatus.RUNNING
    assert await _commands(panel_database, theirs) == []


async def test_template_syntax_in_the_name_is_kept_as_text(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database
) -> None:
    form = _general(player, name="{{ 7*7 }} ${HOME} $(id)")
    await web_client.post(f"/servers/{player.identifier}/settings/general", data=form)
    assert (await _fresh(panel_database, player.id)).name == "{{ 7*7 }} ${HOME} $(id)"
    text = assert_page(await web_client.get(f"/servers/{player.identifier}/settings"))
    assert 'data-testid="server-name">{{ 7*7 }} ${HOME} $(id)<' in text and ">49<" not in text


async def test_resources_beyond_the_users_quota_are_a_403_in_the_form(
    web_client: httpx.AsyncClient, accounts: Accounts, player: Server, panel_database: Database
) -> None:
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(User).where(User.email == accounts.user_email).values(max_memory_mb=1024)
        )
        await db.commit()
    form = _general(player, memory_mb="2048")
    text = assert_page(
        await web_client.post(f"/servers/{player.identifier}/settings/general", data=form), 403
    )
    assert re.search(r'data-testid="form-error">[^<]*memory', text, re.IGNORECASE)
    assert (await _fresh(panel_database, player.id)).memory_mb == 512


async def test_a_reinstall_on_an_offline_node_is_refused_and_changes_nothing(
    web_client: httpx.AsyncClient, player: Server, panel_database: Database, world: World
) -> None:
    async with panel_database.sessionmaker() as db:
        await db.execute(
            sa.update(Node).where(Node.id == world["node"]).values(status=NodeStatus.OFFLINE)
        )
        await db.commit()
    url = f"/servers/{player.identifier}/settings/reinstall"
    response = await web_client.post(url, data={"confirm": "yes"})
    text = assert_page(await web_client.get(response.headers["location"]))
    assert "nothing was sent" in text and 'data-status="running"' in text
    assert (await _fresh(panel_database, player.id)).status == ServerStatus.RUNNING
    assert "server.reinstall" not in await _commands(panel_database, player.id)


async def test_a_subuser_may_change_exactly_the_parts_their_permissions_allow(
    web_client: httpx.AsyncClient, accounts: Accounts, world: World, panel_database: Database
) -> None:
    theirs = world["admins_server"]
    granted = ["server.view", "server.settings", "server.startup.read"]
    async with panel_database.sessionmaker() as db:
        player = await _user(db, accounts.user_email)
        db.add(Subuser(user_id=player.id, server_id=theirs, permissions=granted))
        await db.commit()
    await sign_in(web_client, accounts.user_email)
    base = f"/servers/{theirs}/settings"
    text = assert_page(await web_client.get(base))
    assert 'data-testid="save-general"' in text and 'data-testid="save-variables"' not in text
    assert "settings-variables" in text and "server.startup.update" in text  # read-only
    assert 'data-testid="save-version"' not in text and "reinstall-submit" not in text
    renamed = await web_client.post(f"{base}/general", data={"name": "Shared world"})
    assert renamed.status_code == 303
    assert (await _fresh(panel_database, theirs)).name == "Shared world"
    denied = await web_client.post(f"{base}/variables", data={"var.WORLD": "mine"})
    assert denied.status_code == 403
