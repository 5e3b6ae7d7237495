"""`GET /api/v1/servers/{id}/console-token`: who gets a token, what it says, where it opens."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest
from sqlalchemy import select

from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Blueprint, Node, Server, Subuser
from stellarstack.protocol.tokens import (
    TokenError,
    TokenPurpose,
    generate_signing_key,
    verify,
    verify_console,
)
from tests.panel.admin.world import add_user, session_for
from tests.panel.console.conftest import ConsoleWorld
from tests.panel.db.factories import make_node, make_server


def _url(server_id: object) -> str:
    return f"/api/v1/servers/{server_id}/console-token"


async def _grant(cw: ConsoleWorld, actor: str, **headers: str) -> dict[str, object]:
    world = cw.world
    response = await world.client.get(
        _url(world.server_id), headers={**world.headers(actor), **headers}
    )
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()["data"]
    return data


async def _node_of(cw: ConsoleWorld) -> Node:
    async with cw.world.database.sessionmaker() as db:
        server = await db.get(Server, cw.world.server_id)
        assert server is not None
        node = await db.get(Node, server.node_id)
        assert node is not None
        return node


async def test_owner_gets_a_five_minute_token_the_node_accepts_with_full_rights(
    console_world: ConsoleWorld,
) -> None:
    cw = console_world
    node = await _node_of(cw)
    before = time.time()
    grant = await _grant(cw, "owner", **{"X-Forwarded-For": "203.0.113.9"})
    claims = verify_console(
        str(grant["token"]),
        cw.public_key,
        audience=str(node.id),
        server_id=str(cw.world.server_id),
    )
    assert claims.sub == str(cw.world.users["owner"].id)
    assert claims.permissions.can_read and claims.permissions.can_write
    assert set(claims.permissions.power) == {"start", "stop", "restart", "kill"}
    assert claims.metadata.ip == "203.0.113.9"
    owner = cw.world.users["owner"]
    assert claims.metadata.username == (owner.name or owner.email)
    assert before + 290 <= claims.exp <= time.time() + 301
    assert len(claims.jti) >= 16
    expires = datetime.fromisoformat(str(grant["expiresAt"]))
    assert int(expires.timestamp()) == claims.exp
    assert grant["socketUrl"] == (
        f"wss://{node.fqdn}:{node.port}/api/servers/{cw.world.server_id}/ws"
    )
    assert grant["nodeId"] == str(node.id) and grant["serverId"] == str(cw.world.server_id)
    permissions = grant["permissions"]
    assert isinstance(permissions, dict)
    assert permissions["canWrite"] is True and "server.console.send" in permissions["granted"]


async def test_each_token_has_its_own_id(console_world: ConsoleWorld) -> None:
    node = await _node_of(console_world)
    ids = set()
    for _ in range(3):
        grant = await _grant(console_world, "key_with")
        claims = verify_console(
            str(grant["token"]),
            console_world.public_key,
            audience=str(node.id),
            server_id=str(console_world.world.server_id),
        )
        ids.add(claims.jti)
    assert len(ids) == 3


@pytest.mark.parametrize("actor", ["subuser_without", "key_without", "support"])
async def test_viewers_without_console_send_get_a_read_only_token(
    console_world: ConsoleWorld, actor: str
) -> None:
    node = await _node_of(console_world)
    grant = await _grant(console_world, actor)
    claims = verify_console(
        str(grant["token"]),
        console_world.public_key,
        audience=str(node.id),
        server_id=str(console_world.world.server_id),
    )
    assert claims.permissions.can_read is True
    assert claims.permissions.can_write is False
    assert claims.permissions.power == ()
    assert grant["permissions"] == {
        "canRead": True,
        "canWrite": False,
        "power": [],
        "granted": grant["permissions"]["granted"],  # type: ignore[index]
    }


async def test_a_moderator_may_type_and_use_power_on_any_server(
    console_world: ConsoleWorld,
) -> None:
    grant = await _grant(console_world, "moderator")
    permissions = grant["permissions"]
    assert isinstance(permissions, dict)
    assert permissions["canWrite"] is True
    assert permissions["power"] == ["start", "stop", "restart", "kill"]


async def test_token_is_refused_for_another_server_node_key_or_purpose(
    console_world: ConsoleWorld,
) -> None:
    node = await _node_of(console_world)
    token = str((await _grant(console_world, "owner"))["token"])
    server_id = str(console_world.world.server_id)
    with pytest.raises(TokenError, match="another server"):
        verify_console(token, console_world.public_key, audience=str(node.id), server_id="x")
    with pytest.raises(TokenError, match="another node"):
        verify_console(token, console_world.public_key, audience="node-b", server_id=server_id)
    other_key = generate_signing_key().public_key()
    with pytest.raises(TokenError, match="signature"):
        verify_console(token, other_key, audience=str(node.id), server_id=server_id)
    with pytest.raises(TokenError, match="not a upload token"):
        verify(
            token,
            console_world.public_key,
            audience=str(node.id),
            purpose=TokenPurpose.UPLOAD,
            server_id=server_id,
        )


async def test_someone_elses_server_is_not_found(console_world: ConsoleWorld) -> None:
    world = console_world.world
    response = await world.client.get(_url(world.server_id), headers=world.headers("other_user"))
    assert response.status_code == 404
    assert "token" not in response.text


@pytest.mark.parametrize(
    "server_ref",
    [
        str(uuid.uuid4()),
        "a" * 65,
        "..%2F..%2Fetc",
        "%00",
        "%F0%9F%92%A5",
        "1%27%20OR%20%271%27%3D%271",
    ],
)
async def test_unknown_or_hostile_server_ids_are_not_found(
    console_world: ConsoleWorld, server_ref: str
) -> None:
    world = console_world.world
    response = await world.client.get(_url(server_ref), headers=world.headers("owner"))
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_anonymous_callers_are_asked_to_sign_in(console_world: ConsoleWorld) -> None:
    world = console_world.world
    response = await world.client.get(_url(world.server_id))
    assert response.status_code == 401


async def test_a_server_on_an_offline_node_gets_503_with_retry_after(
    console_world: ConsoleWorld,
) -> None:
    world = console_world.world
    async with world.database.sessionmaker() as db:
        blueprint = (await db.execute(select(Blueprint).limit(1))).scalar_one()
        owner = await db.get(type(world.users["owner"]), world.users["owner"].id)
        assert owner is not None
        node = make_node(f"down-{uuid.uuid4().hex[:6]}")
        node.status = NodeStatus.OFFLINE
        server = make_server(owner, node, blueprint, name="Sleeping")
        db.add_all([node, server])
        await db.commit()
        server_id = server.id
    response = await world.client.get(_url(server_id), headers=world.headers("owner"))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "offline" in response.json()["error"]["detail"]


async def test_minting_is_rate_limited_per_user_and_server(console_world: ConsoleWorld) -> None:
    world = console_world.world
    headers = world.headers("subuser_with")
    statuses = [
        (await world.client.get(_url(world.server_id), headers=headers)).status_code
        for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429
    limited = await world.client.get(_url(world.server_id), headers=headers)
    assert int(limited.headers["retry-after"]) > 0
    # another caller on the same server is not held back
    assert (await _grant(console_world, "admin"))["permissions"] is not None


@pytest.mark.parametrize(
    ("actor", "status"),
    [("owner", 200), ("support", 200), ("moderator", 200), ("other_user", 404)],
)
async def test_the_console_page_opens_only_for_those_who_may_watch(
    console_world: ConsoleWorld, actor: str, status: int
) -> None:
    world = console_world.world
    response = await world.client.get(
        f"/servers/{world.server_id}/console", headers=world.headers(actor)
    )
    assert response.status_code == status
    if status == 200:
        assert f"/api/v1/servers/{world.server_id}/console-token" in response.text
        assert "<script>" not in response.text  # strict CSP: data-* attributes only


async def test_the_console_page_refuses_subusers_without_the_console_permission(
    console_world: ConsoleWorld,
) -> None:
    world = console_world.world
    user = await add_user(world.database, f"viewer-{uuid.uuid4().hex[:8]}@example.test")
    async with world.database.sessionmaker() as db:
        db.add(Subuser(user_id=user.id, server_id=world.server_id, permissions=["server.view"]))
        await db.commit()
    headers = await session_for(world.database, user)
    page = await world.client.get(f"/servers/{world.server_id}/console", headers=headers)
    assert page.status_code == 403
    api = await world.client.get(_url(world.server_id), headers=headers)
    assert api.status_code == 403
    assert "server.console" in api.json()["error"]["detail"]
