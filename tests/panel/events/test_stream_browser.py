"""events.js in chromium: a signed-in page opens one stream and relays events as DOM events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from stellarstack.broker import MemoryBroker
from stellarstack.panel.app import create_app
from stellarstack.panel.auth.sessions import SESSION_COOKIE
from stellarstack.panel.db import migrate
from stellarstack.panel.db.session import Database
from stellarstack.settings import PanelSettings
from tests.e2e.conftest import built_assets, screenshot, watched_page
from tests.panel.events.sse import make_cast, publish_node, publish_status, serve

__all__ = ["built_assets"]  # the fixture, imported for pytest


async def until(page: Page, expression: str, timeout: float = 10.0) -> None:
    """Poll a page expression (wait_for_function would need eval, which the CSP forbids)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await page.evaluate(expression):
        assert asyncio.get_running_loop().time() < deadline, f"never true: {expression}"
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("built_assets")
async def test_a_signed_in_page_relays_live_events_and_only_the_users_own(
    browser: Browser, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    await migrate.upgrade(url)
    database = Database(url)
    broker = MemoryBroker()
    cast = await make_cast(database)
    app = create_app(PanelSettings(data_dir=tmp_path), database=database, broker=broker)
    cookie = cast.headers["alice"]["Cookie"].split(";")[0].split("=", 1)[1]
    async with serve(app) as base, watched_page(browser, base) as (page, watch):
        await page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": base}])
        opened: list[str] = []
        page.on("request", lambda r: opened.append(r.url) if "/events/stream" in r.url else None)
        await page.goto("/settings")
        await until(page, "document.documentElement.dataset.events === 'live'")
        streams = len(opened)
        assert streams == 1
        await page.evaluate(
            """() => {
              window.got = [];
              for (const type of ["server.status", "node.status"]) {
                document.addEventListener("stellar:" + type, (e) => window.got.push(e.detail));
              }
            }"""
        )
        await publish_status(broker, cast, cast.server_b, "bob's <img src=x onerror=alert(1)>")
        await publish_node(broker, cast, "node-wide")
        await publish_status(broker, cast, cast.server_a, "alice's <b>own</b>")
        await until(page, "window.got.length >= 1")
        await page.wait_for_timeout(300)
        got = json.loads(await page.evaluate("JSON.stringify(window.got)"))
        assert [g["data"]["reason"] for g in got] == ["alice's <b>own</b>"]
        assert got[0]["serverId"] == str(cast.server_a) and got[0]["eventId"]
        await screenshot(page, "events-settings-live")
        watch.assert_clean()
    await broker.close()
    await database.dispose()
