"""Admin and API key pages over HTTP: lists, forms that act, text rendered escaped."""

from __future__ import annotations

import re

from sqlalchemy import select

from stellarstack.panel.db.models import ApiKey, User
from tests.panel.admin.world import World, add_user

HTML = {"Accept": "text/html"}
HOSTILE = "<script>alert('x')</script>"


async def _form_post(world: World, actor: str, page: str, action: str, data: dict[str, object]):  # type: ignore[no-untyped-def]
    """Load the page (for its CSRF token, if the panel issues one), then submit a form on it."""
    headers = {**world.headers(actor), **HTML}
    shown = await world.client.get(page, headers=headers)
    assert shown.status_code == 200, shown.text[:300]
    token = re.search(r'name="csrf_token" value="([^"]*)"', shown.text)
    csrf_cookie = shown.cookies.get("stellar_csrf")
    if csrf_cookie:
        headers["Cookie"] = f"{headers['Cookie']}; stellar_csrf={csrf_cookie}"
    world.client.cookies.clear()
    form = {**data, "csrf_token": token.group(1) if token else ""}
    return await world.client.post(
        action, data=form, headers={**headers, "Origin": "http://testserver"}
    )


async def test_users_page_lists_and_escapes_names(world: World) -> None:
    async with world.database.sessionmaker() as db:
        db.add(User(email="hostile@example.test", name=HOSTILE, password_hash="!"))
        await db.commit()
    page = await world.client.get(
        "/admin/users", params={"search": "hostile"}, headers={**world.headers("support"), **HTML}
    )
    assert page.status_code == 200
    assert HOSTILE not in page.text
    assert "&lt;script&gt;alert(" in page.text
    refused = await world.client.get("/admin/users", headers={**world.headers("owner"), **HTML})
    assert refused.status_code == 403


async def test_suspending_from_the_user_page(world: World) -> None:
    target = await add_user(world.database, "page-target@example.test")
    page = f"/admin/users/{target.id}"
    response = await _form_post(
        world, "moderator", page, f"{page}/suspend", {"reason": "<b>spam</b>"}
    )
    assert response.status_code == 303 and response.headers["location"] == page
    shown = await world.client.get(page, headers={**world.headers("moderator"), **HTML})
    assert 'data-testid="suspended-badge"' in shown.text
    assert "&lt;b&gt;spam&lt;/b&gt;" in shown.text
    assert "user.suspend" in shown.text
    # support may look but not act: the form is not offered
    support_view = await world.client.get(page, headers={**world.headers("support"), **HTML})
    assert f"{page}/unsuspend" not in support_view.text


async def test_a_refused_role_change_comes_back_as_a_message(world: World) -> None:
    target = await add_user(world.database, "page-role@example.test")
    page = f"/admin/users/{target.id}"
    response = await _form_post(world, "admin", page, f"{page}/role", {"role": "super_admin"})
    assert response.status_code == 303
    async with world.database.sessionmaker() as db:
        row = await db.get(User, target.id)
        assert row is not None and row.role.value == "user"


async def test_audit_page_shows_entries_escaped(world: World) -> None:
    target = await add_user(world.database, "audited@example.test")
    page = f"/admin/users/{target.id}"
    await _form_post(world, "admin", page, f"{page}/suspend", {"reason": HOSTILE})
    audit = await world.client.get(
        "/admin/audit", params={"action": "user.*"}, headers={**world.headers("admin"), **HTML}
    )
    assert audit.status_code == 200
    assert "user.suspend" in audit.text
    assert HOSTILE not in audit.text


async def test_api_key_page_shows_the_token_once_and_revokes(world: World) -> None:
    page = "/settings/api-keys"
    created = await _form_post(
        world, "other_user", page, page, {"name": HOSTILE, "permissions": ["server.view"]}
    )
    assert created.status_code == 201
    token = re.search(r'data-testid="new-token"[^>]*>(strk_[^<]+)<', created.text)
    assert token is not None
    assert HOSTILE not in created.text
    again = await world.client.get(page, headers={**world.headers("other_user"), **HTML})
    assert token.group(1) not in again.text
    async with world.database.sessionmaker() as db:
        key = (
            await db.execute(select(ApiKey).where(ApiKey.user_id == world.users["other_user"].id))
        ).scalar_one()
    revoked = await _form_post(world, "other_user", page, f"{page}/{key.id}/revoke", {})
    assert revoked.status_code == 303
    me = await world.client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert me.status_code == 401


async def test_api_key_form_errors_are_shown_not_raised(world: World) -> None:
    page = "/settings/api-keys"
    empty = await _form_post(world, "other_user", page, page, {"name": "x"})
    assert empty.status_code == 422
    assert 'data-testid="key-error"' in empty.text
    beyond = await _form_post(
        world, "other_user", page, page, {"name": "x", "permissions": ["user.view"]}
    )
    assert beyond.status_code == 422
