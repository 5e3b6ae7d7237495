"""Error pages: browsers get HTML (never a traceback), API clients keep RFC 7807 JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.exc import OperationalError

from stellarstack.broker import MemoryBroker
from stellarstack.panel import web
from stellarstack.panel.app import create_app
from stellarstack.panel.db.session import Database
from stellarstack.panel.errors import Conflict
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.settings import PanelSettings

SECRET = "internal detail that must not leak"


@pytest.fixture
async def failing_client(
    panel_settings: PanelSettings, panel_database: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The full app plus routes that fail in each way a page or an API route can."""
    broker = MemoryBroker()
    app = create_app(panel_settings, database=panel_database, broker=broker)

    async def crash() -> None:
        raise RuntimeError(SECRET)

    async def database_down() -> None:
        raise OperationalError("SELECT 1", {}, Exception(SECRET))

    async def conflict() -> None:
        raise Conflict("That name is taken.")

    for path, endpoint in [("/boom", crash), ("/db-down", database_down), ("/taken", conflict)]:
        app.router.routes.append(PageRoute(f"/page{path}", endpoint, include_in_schema=False))
        app.add_api_route(f"/api/v1/test{path}", endpoint)
    web.install_error_pages(app)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"accept": "text/html"}
        ) as client:
            yield client
    await broker.close()


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/page/boom", 500, "Something went wrong on our side"),
        ("/page/db-down", 503, "A service the panel depends on is unavailable"),
        ("/page/taken", 409, "That name is taken."),
        ("/api/v1/test/boom", 500, "Something went wrong on our side"),
    ],
)
async def test_browsers_get_a_friendly_page_without_internals(
    failing_client: httpx.AsyncClient, path: str, status: int, text: str
) -> None:
    response = await failing_client.get(path, headers={"accept": "text/html"})
    if path.startswith("/api/"):  # API paths stay JSON even for a browser
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/problem+json")
        assert SECRET not in response.text
        return
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert text in response.text
    assert SECRET not in response.text and "Traceback" not in response.text


async def test_unexpected_errors_outside_page_routes_render_for_browsers(
    failing_client: httpx.AsyncClient,
) -> None:
    response = await failing_client.get("/auth/signout")  # exists, but only for POST
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")
    assert "Method Not Allowed" in response.text


async def test_api_clients_keep_json_for_the_same_failures(
    failing_client: httpx.AsyncClient,
) -> None:
    response = await failing_client.get("/no/such/page", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.json()["success"] is False
