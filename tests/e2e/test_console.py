"""The console page in chromium on the real embedded panel, against a running test game.

The panel runs its daemon on the process runtime with the test game blueprint
(tests/support/game_image.py), so a server deploys in a second without Docker. The browser
opens `/servers/{id}/console`: xterm shows the replayed output, a typed command echoes back,
and a kill from the page turns the status badge to stopped without a reload.
Screenshots land in test-artifacts/web/console-*.png.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from tests.e2e.conftest import PHONE, Panel, screenshot, sign_in, watched_page
from tests.panel.console.live import admin_client, deploy_running_game, start_game_panel
from tests.support.panel import LivePanel


@pytest.fixture(scope="module")
def game_panel(built_assets: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    """A live panel (own data dir) whose local node runs the test game."""
    live: LivePanel = start_game_panel(tmp_path_factory.mktemp("console-e2e"))
    try:
        assert live.admin_email and live.admin_password, live.text()
        yield Panel(live.url, live.admin_email, live.admin_password)
    finally:
        live.stop()


@pytest.fixture(scope="module")
def game(game_panel: Panel) -> dict[str, Any]:
    """A RUNNING test game owned by the first admin."""
    client = admin_client(game_panel.url, game_panel.admin_email, game_panel.admin_password)
    try:
        return deploy_running_game(client, name="Console world")
    finally:
        client.close()


@pytest.fixture(scope="module")
def watcher(game_panel: Panel, game: dict[str, Any]) -> Panel:
    """A second account, subuser of the game with `server.view` + `server.console` only."""
    email, password = "watcher@example.test", f"Watch-{secrets.token_urlsafe(12)}"
    client = admin_client(game_panel.url, game_panel.admin_email, game_panel.admin_password)
    try:
        made = client.post("/api/v1/admin/users", json={"email": email, "password": password})
        assert made.status_code == 201, made.text
        granted = client.post(
            f"/api/v1/servers/{game['id']}/subusers",
            json={"email": email, "permissions": ["server.view", "server.console"]},
        )
        assert granted.status_code == 201, granted.text
    finally:
        client.close()
    return Panel(game_panel.url, email, password)


async def _eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    """Wait until `check()` holds (for state kept in the test, not on the page)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


def _terminal_text(page: Page) -> Locator:
    return page.locator("#console-terminal .xterm-rows")


async def test_a_command_echoes_and_a_kill_turns_the_badge_without_reload(
    browser: Browser, game_panel: Panel, game: dict[str, Any]
) -> None:
    async with watched_page(browser, game_panel.url) as (page, watch):
        await sign_in(page, game_panel)
        await page.goto(f"/servers/{game['id']}/console")
        console = page.locator("#console")
        await expect(console).to_have_attribute("data-link", "connected", timeout=15_000)
        await expect(console).to_have_attribute("data-status", "running")
        await expect(_terminal_text(page)).to_contain_text("Server ready on port")

        command = page.get_by_label("Command")
        await command.fill("hello from the browser")
        await command.press("Enter")
        await expect(_terminal_text(page)).to_contain_text("> hello from the browser")
        await expect(command).to_have_value("")
        await command.fill("colour")
        await command.press("Enter")
        await expect(_terminal_text(page)).to_contain_text("green and red")
        # history: ↑ brings back the last command, ↑ again the one before
        await command.press("ArrowUp")
        await expect(command).to_have_value("colour")
        await command.press("ArrowUp")
        await expect(command).to_have_value("hello from the browser")
        await command.press("ArrowDown")
        await command.press("ArrowDown")
        await expect(command).to_have_value("")

        # the charts fill from the socket's stats events (one a second)
        await expect(page.locator('[data-metric="cpu"]')).to_have_text(re.compile(r"%$"))
        await expect(page.locator('[data-chart="memory"] canvas')).to_be_visible(timeout=10_000)
        await screenshot(page, "console-running")

        await page.get_by_role("button", name="Kill").click()
        await expect(console).to_have_attribute("data-status", "stopped", timeout=15_000)
        await expect(page.locator("[data-console-status]")).to_contain_text("stopped")
        await expect(page.get_by_role("button", name="Start", exact=True)).to_be_enabled()
        await expect(page.get_by_role("button", name="Kill")).to_be_disabled()
        await screenshot(page, "console-killed")

        await page.get_by_role("button", name="Start", exact=True).click()
        await expect(console).to_have_attribute("data-status", "running", timeout=20_000)
        await expect(_terminal_text(page)).to_contain_text("Server ready on port")
        watch.assert_clean()


async def test_the_console_fits_a_phone_in_dark_mode(
    browser: Browser, game_panel: Panel, game: dict[str, Any]
) -> None:
    async with watched_page(browser, game_panel.url, theme="dark", viewport=PHONE) as (
        page,
        watch,
    ):
        await sign_in(page, game_panel)
        await page.goto(f"/servers/{game['id']}/console")
        await expect(page.locator("#console")).to_have_attribute(
            "data-link", "connected", timeout=15_000
        )
        await expect(page.get_by_label("Command")).to_be_enabled()
        await screenshot(page, "console-dark-phone")
        watch.assert_clean()


async def test_a_viewer_without_send_watches_read_only(
    browser: Browser, watcher: Panel, game: dict[str, Any]
) -> None:
    async with watched_page(browser, watcher.url) as (page, watch):
        await sign_in(page, watcher)
        await page.goto(f"/servers/{game['id']}/console")
        console = page.locator("#console")
        await expect(console).to_have_attribute("data-link", "connected", timeout=15_000)
        await expect(_terminal_text(page)).to_contain_text("Server ready on port")
        await expect(
            page.get_by_text("You can watch this console but not type in it")
        ).to_be_visible()
        await expect(page.get_by_label("Command")).to_be_disabled()
        for name in ("Start", "Restart", "Stop", "Kill"):
            await expect(page.get_by_role("button", name=name, exact=True)).to_be_hidden()
        await screenshot(page, "console-read-only")
        watch.assert_clean()


async def test_token_expiring_re_authenticates_on_the_same_socket_and_a_drop_reconnects(
    browser: Browser, game_panel: Panel, game: dict[str, Any]
) -> None:
    routes: list[WebSocketRoute] = []
    auths: list[str] = []

    def route(socket: WebSocketRoute) -> None:
        server = socket.connect_to_server()

        def from_page(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            if json.loads(text).get("event") == "auth":
                auths.append(text)
            server.send(message)

        socket.on_message(from_page)
        routes.append(socket)

    async with watched_page(browser, game_panel.url) as (page, watch):
        await page.route_web_socket(re.compile(r"/api/servers/[^/]+/ws$"), route)
        await sign_in(page, game_panel)
        await page.goto(f"/servers/{game['id']}/console")
        console = page.locator("#console")
        await expect(console).to_have_attribute("data-link", "connected", timeout=15_000)
        command = page.get_by_label("Command")
        await command.fill("before refresh")
        await command.press("Enter")
        await expect(_terminal_text(page)).to_contain_text("> before refresh")
        assert len(routes) == 1 and len(auths) == 1

        # the daemon's warning, 60 s before expiry: the page fetches a token, sends it again
        routes[0].send(json.dumps({"event": "token expiring", "args": [0]}))
        await _eventually(lambda: len(auths) == 2)
        assert json.loads(auths[1])["args"][0] != json.loads(auths[0])["args"][0]
        await command.fill("after refresh")
        await command.press("Enter")
        await expect(_terminal_text(page)).to_contain_text("> after refresh")
        await expect(_terminal_text(page)).to_contain_text("> before refresh")
        assert len(routes) == 1  # same socket, view kept

        # the node drops the socket: the page reconnects with a fresh token
        await routes[0].close(code=1012, reason="node restarting")
        await _eventually(lambda: len(routes) == 2)
        await expect(console).to_have_attribute("data-link", "connected", timeout=15_000)
        await expect(_terminal_text(page)).to_contain_text("reconnected")
        await expect(_terminal_text(page)).to_contain_text("> after refresh")
        watch.assert_clean()
