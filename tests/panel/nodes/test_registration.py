"""Registration over the API: one-time tokens, what a node receives, and every refusal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from cryptography import x509

from stellarstack.panel.db.enums import AuditStatus, NodeStatus
from stellarstack.panel.db.models import AuditLog, Node, NodeRegistrationToken
from stellarstack.panel.domain.nodes.tokens import token_hash
from tests.panel.nodes.conftest import NodePanel, registration_body

REGISTER = "/api/v1/nodes/register"


async def register(panel: NodePanel, token: str | None, **overrides: object) -> httpx.Response:
    headers = {"X-Registration-Token": token} if token is not None else {}
    return await panel.anonymous.post(
        REGISTER, json=registration_body(**overrides), headers=headers
    )


async def test_an_admin_gets_a_one_time_token_and_the_install_command(
    sqlite_panel: NodePanel,
) -> None:
    response = await sqlite_panel.admin.post(
        "/api/v1/admin/nodes/token",
        json={"name": "us-west-1", "region": "US-West", "maxServers": 50},
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["registrationToken"].startswith("strk_reg_")
    assert data["region"] == "us-west" and data["maxServers"] == 50
    expires = datetime.fromisoformat(data["expiresAt"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=24)
    assert data["registrationToken"] in data["installCommand"]
    assert "/api/v1/nodes/install-daemon.sh" in data["installCommand"]
    assert data["registerCommand"].startswith("stellarstack daemon register --panel http://")
    async with sqlite_panel.database.sessionmaker() as db:
        stored = await db.scalar(
            sa.select(NodeRegistrationToken).where(NodeRegistrationToken.name == "us-west-1")
        )
    assert stored is not None and stored.token_hash == token_hash(data["registrationToken"])


async def test_only_admins_create_registration_tokens(sqlite_panel: NodePanel) -> None:
    body = {"name": "sneaky"}
    forbidden = await sqlite_panel.player.post("/api/v1/admin/nodes/token", json=body)
    anonymous = await sqlite_panel.anonymous.post("/api/v1/admin/nodes/token", json=body)
    assert forbidden.status_code == 403
    assert "node.create" in forbidden.json()["error"]["detail"]
    assert anonymous.status_code == 401


async def test_a_registered_node_receives_its_id_token_certificate_and_panel_keys(
    sqlite_panel: NodePanel,
) -> None:
    token = await sqlite_panel.token("eu-1", region="eu", maxServers=20)
    response = await register(sqlite_panel, token, hostname="node-eu.example.com")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["apiToken"].startswith("strk_node_")
    assert data["redisUrl"] is None  # no Redis on this panel: nothing to connect to
    certificate = x509.load_pem_x509_certificate(data["certificate"].encode())
    ca = x509.load_pem_x509_certificate(data["caCertificate"].encode())
    certificate.verify_directly_issued_by(ca)
    common_name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert common_name == data["nodeId"]
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node-eu.example.com" in names.get_values_for_type(x509.DNSName)
    assert "BEGIN PUBLIC KEY" in data["panelPublicKey"]
    async with sqlite_panel.database.sessionmaker() as db:
        node = await db.get(Node, uuid.UUID(data["nodeId"]))
    assert node is not None
    assert (node.name, node.region, node.max_servers, node.cpu_cores) == ("eu-1", "eu", 20, 8)
    assert node.status == NodeStatus.STARTING
    assert node.api_token_hash == token_hash(data["apiToken"])  # only the hash is kept
    assert node.certificate_serial == format(certificate.serial_number, "x")


async def test_a_used_token_is_refused(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("reuse-1")
    assert (await register(sqlite_panel, token)).status_code == 201
    again = await register(sqlite_panel, token)
    assert again.status_code == 401
    assert "already been used" in again.json()["error"]["detail"]


async def test_an_expired_token_is_refused(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("late-1")
    async with sqlite_panel.database.sessionmaker() as db:
        await db.execute(
            sa.update(NodeRegistrationToken)
            .where(NodeRegistrationToken.token_hash == token_hash(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await db.commit()
    response = await register(sqlite_panel, token)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["detail"]


async def test_forged_and_malformed_tokens_are_refused_and_audited(sqlite_panel: NodePanel) -> None:
    real = await sqlite_panel.token("forged-target")
    for forged in [
        None,
        "",
        "strk_reg_" + "A" * 43,
        real[:-1] + ("B" if real[-1] != "B" else "C"),
        "strk_node_" + real.removeprefix("strk_reg_"),
        "strk_reg_" + "x" * 5000,
        "' OR 1=1 --",
    ]:
        response = await register(sqlite_panel, forged)
        assert response.status_code == 401, (forged, response.text)
        assert response.json()["error"]["detail"]
    async with sqlite_panel.database.sessionmaker() as db:
        failures = await db.scalar(
            sa.select(sa.func.count()).where(
                AuditLog.action == "node.register", AuditLog.status == AuditStatus.FAILURE
            )
        )
    assert failures is not None and failures >= 7
    assert (await register(sqlite_panel, real)).status_code == 201  # none of that burnt it


async def test_two_simultaneous_registrations_with_one_token_exactly_one_wins(
    engine_panel: NodePanel,
) -> None:
    token = await engine_panel.token("race-1")
    responses = await asyncio.gather(*(register(engine_panel, token) for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 401, 401, 401], [r.text for r in responses]
    async with engine_panel.database.sessionmaker() as db:
        nodes = await db.scalar(sa.select(sa.func.count()).select_from(Node))
    assert nodes == 1


async def test_a_refused_registration_leaves_the_token_usable(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("retry-1")
    for bad, field in [
        ({"publicKey": "not a key"}, "publicKey"),
        ({"version": "9.0.0"}, "version"),
        ({"hostname": "evil host; rm -rf /"}, "hostname"),
        ({"port": 70000}, "port"),
        ({"specs": {"cpu": -1, "memory": 1, "disk": 1}}, "specs.cpu"),
    ]:
        response = await register(sqlite_panel, token, **bad)
        assert response.status_code == 422, (bad, response.text)
        fields = [e["field"] for e in response.json()["error"]["errors"]]
        assert field in fields, (bad, fields)
    assert (await register(sqlite_panel, token)).status_code == 201


async def test_a_token_for_a_name_in_use_is_refused(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("twin")
    second = await sqlite_panel.token("twin")  # no node called twin yet: both may exist
    assert (await register(sqlite_panel, token)).status_code == 201
    clash = await register(sqlite_panel, second)
    assert clash.status_code == 409 and "twin" in clash.json()["error"]["detail"]
    again = await sqlite_panel.admin.post("/api/v1/admin/nodes/token", json={"name": "twin"})
    assert again.status_code == 409


async def test_token_requests_with_bad_fields_get_field_errors(sqlite_panel: NodePanel) -> None:
    for body, field in [
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "ok", "region": "us west/1"}, "region"),
        ({"name": "ok", "maxServers": 0}, "maxServers"),
    ]:
        response = await sqlite_panel.admin.post("/api/v1/admin/nodes/token", json=body)
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["error"]["errors"]]


async def test_a_node_token_opens_no_user_or_admin_route(sqlite_panel: NodePanel) -> None:
    token = await sqlite_panel.token("not-a-user")
    node_token = (await register(sqlite_panel, token)).json()["data"]["apiToken"]
    bearer = {"Authorization": f"Bearer {node_token}"}
    for method, path in [
        ("GET", "/api/v1/nodes"),
        ("GET", "/api/v1/users/me"),
        ("POST", "/api/v1/admin/nodes/token"),
    ]:
        response = await sqlite_panel.anonymous.request(
            method, path, headers=bearer, json={"name": "x"}
        )
        assert response.status_code == 401, (path, response.text)
    # and it is no registration token either
    reuse = await register(sqlite_panel, node_token)
    assert reuse.status_code == 401


async def test_the_install_script_is_served_for_the_one_line_install(
    sqlite_panel: NodePanel,
) -> None:
    response = await sqlite_panel.anonymous.get("/api/v1/nodes/install-daemon.sh")
    assert response.status_code == 200
    assert response.text.startswith("#!/bin/sh")
    assert "daemon register --panel" in response.text
