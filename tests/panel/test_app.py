"""The panel app: RFC 7807 errors, request ids, health, metrics, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from stellarstack.broker import create_broker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.service import create_user
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.support.services import free_port


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """The response is an RFC 7807 problem in the spec's envelope with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["success"] is False
    error = body["error"]
    assert error["status"] == status
    assert error["type"].startswith("https://")
    assert error["title"] and error["detail"]
    assert error["instance"] == response.headers["x-request-id"]
    return dict(error)


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    error = assert_problem(await client.get("/api/v1/no-such-thing"), 404)
    assert "/api/v1/no-such-thing" in str(error["detail"])


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/api/v1/auth/session"), 405)


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/sign-in",
        content=b'{"email": "a@b.c", "password": ',
        headers={"content-type": "application/json"},
    )
    error = assert_problem(response, 400)
    assert "JSON" in str(error["detail"])


async def test_wrong_types_list_their_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/sign-in", json={"email": 42, "password": ["x"]})
    error = assert_problem(response, 422)
    fields = {e["field"] for e in error["errors"]}  # type: ignore[attr-defined]
    assert fields == {"email", "password"}


async def test_missing_fields_are_listed(client: httpx.AsyncClient) -> None:
    error = assert_problem(await client.post("/api/v1/auth/sign-in", json={}), 422)
    assert {e["field"] for e in error["errors"]} == {"email", "password"}  # type: ignore[attr-defined]


async def test_oversized_body_is_a_413_problem(client: httpx.AsyncClient) -> None:
    big = b'{"email": "' + b"a" * (128 * 1024) + b'", "password": "x"}'
    response = await client.post(
        "/api/v1/auth/sign-in", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/health", headers={"x-request-id": "<script>alert(1)</script>"})
    assert replaced.headers["x-request-id"] != "<script>alert(1)</script>"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_health_reports_database_broker_and_nodes(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["redis"] == {
        **body["checks"]["redis"],
        "status": "healthy",
        "mode": "embedded",
    }
    assert body["checks"]["nodes"] == {"total": 0, "healthy": 0, "unhealthy": 0, "offline": 0}
    assert body["version"]
    assert body["timestamp"].endswith("Z")


async def test_health_is_200_degraded_and_names_redis_when_only_redis_is_down(
    panel_settings: PanelSettings, panel_database: Database
) -> None:
    dead = create_broker(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(panel_settings, database=panel_database, broker=dead)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/health")
    await dead.close()
    assert response.status_code == 200  # the database answers: this replica still serves
    body = response.json()
    assert body["status"] == "degraded" and body["degraded"] == ["redis"]
    assert body["checks"]["redis"]["status"] == "unhealthy"
    assert body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["status"] == "healthy"


async def test_health_is_503_and_names_the_database_when_it_is_down(
    panel_settings: PanelSettings, tmp_path: object
) -> None:
    missing = Database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    broker = create_broker(None)
    app = create_app(panel_settings, database=missing, broker=broker)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/health")
    await broker.close()
    await missing.dispose()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "unhealthy"
    assert checks["redis"]["status"] == "healthy"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    await client.get("/api/v1/users/me")
    text = (await client.get("/metrics")).text
    assert 'stellar_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'route="/api/v1/users/me",status="401"' in text


async def test_openapi_documents_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/auth/sign-in" in spec["paths"]
    assert "/api/v1/users/me" in spec["paths"]
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_sign_in_sets_a_session_that_reaches_users_me(
    client: httpx.AsyncClient, panel_database: Database
) -> None:
    async with panel_database.sessionmaker() as db:
        await create_user(db, "Player@Example.com", "correct horse battery", name="<b>P</b>")
        await db.commit()
    assert (await client.get("/api/v1/users/me")).status_code == 401
    response = await client.post(
        "/api/v1/auth/sign-in",
        json={"email": "player@example.com", "password": "correct horse battery"},
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = (await client.get("/api/v1/users/me")).json()["data"]
    assert me["email"] == "player@example.com"
    assert me["name"] == "<b>P</b>"
    assert "passwordHash" not in me and "password_hash" not in me
    await client.post("/api/v1/auth/sign-out")
    assert (await client.get("/api/v1/users/me")).status_code == 401


@pytest.mark.parametrize("email", ["player@example.com", "nobody@example.com"])
async def test_wrong_credentials_get_the_same_answer(
    client: httpx.AsyncClient, panel_database: Database, email: str
) -> None:
    async with panel_database.sessionmaker() as db:
        await create_user(db, "player@example.com", "correct horse battery")
        await db.commit()
    response = await client.post("/api/v1/auth/sign-in", json={"email": email, "password": "nope"})
    error = assert_problem(response, 401)
    assert error["detail"] == "The email or password is incorrect."


async def test_forged_session_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    client.cookies.set("stellar_session", "forged" * 10)
    assert_problem(await client.get("/api/v1/users/me"), 401)
    client.cookies.set("stellar_session", "x" * 5000)
    assert_problem(await client.get("/api/v1/users/me"), 401)


async def test_oversized_streamed_body_is_a_413_problem(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the limit must count bytes as they arrive
        for _ in range(40):
            yield b"x" * 4096

    response = await client.post(
        "/api/v1/auth/sign-in", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)
