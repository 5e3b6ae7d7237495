"""Server pages in a real browser on the real `stellarstack up`: the deploy wizard from the
game catalogue to a RUNNING server and its connect address, then a power action whose status
change shows up without a reload.

The embedded panel's local daemon runs the process runtime here, and an operator blueprint
directory holds the test game (a shell script, tests/support/game_image.py), so the server
really starts, logs its ready line and listens on its port on 127.0.0.1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import PHONE, Panel, screenshot, sign_in, watched_page
from tests.support.game_image import GAME_BLUEPRINT_SLUG, write_game_blueprint, write_game_script
from tests.support.panel import start_embedded_panel
from tests.support.services import free_port

DEPLOYED_WITHIN_MS = 90_000


def _add_local_port(url: str, email: str, password: str, port: int) -> None:
    """Give the local node a free loopback port through the API (it may start with none)."""
    with httpx.Client(base_url=url, timeout=30, headers={"Origin": url}) as client:
        signed_in = client.post("/api/v1/auth/sign-in", json={"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        client.headers["X-CSRF-Token"] = client.cookies.get("stellar_csrf") or ""
        nodes = client.get("/api/v1/nodes").json()["data"]
        local = next(n for n in nodes if n["name"] == "local")
        added = client.post(
            f"/api/v1/nodes/{local['id']}/allocations", json={"ip": "127.0.0.1", "ports": [port]}
        )
        assert added.status_code == 201, added.text


@pytest.fixture(scope="module")
def game_panel(built_assets: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Panel]:
    """A live embedded panel (process runtime) that offers the test game."""
    root = tmp_path_factory.mktemp("e2e-servers")
    script = write_game_script(root / "game")
    blueprints = root / "blueprints"
    write_game_blueprint(blueprints, str(script))
    live = start_embedded_panel(
        root / "data",
        env={"STELLAR_DAEMON_RUNTIME": "process", "STELLAR_BLUEPRINTS_DIR": str(blueprints)},
        timeout=90,
    )
    try:
        assert live.admin_email and live.admin_password, live.text()
        _add_local_port(live.url, live.admin_email, live.admin_password, free_port())
        yield Panel(live.url, live.admin_email, live.admin_password)
    finally:
        live.stop()


async def test_the_wizard_deploys_the_test_game_and_a_stop_shows_without_reload(
    browser: Browser, game_panel: Panel
) -> None:
    async with watched_page(browser, game_panel.url) as (page, watch):
        await sign_in(page, game_panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.goto("/servers")
        await expect(page.get_by_role("heading", name="No servers yet")).to_be_visible()
        await screenshot(page, "servers-empty")
        await page.get_by_test_id("deploy-cta").click()

        # Step 1: the catalogue narrows as the user types.
        await page.wait_for_url(re.compile(r"/servers/new$"))
        await page.get_by_label("Search games").fill("test game")
        card = page.locator(f'[data-testid="game-card"][data-slug="{GAME_BLUEPRINT_SLUG}"]')
        await expect(card).to_be_visible()
        await expect(page.locator('[data-slug="luanti"]')).to_be_hidden()
        await screenshot(page, "servers-wizard-games")
        await card.click()

        # Step 2: defaults from the blueprint; the user names the server and picks the node.
        await page.wait_for_url(re.compile(rf"/servers/new/{GAME_BLUEPRINT_SLUG}$"))
        await expect(page.get_by_label("Version")).to_have_value("1.0")
        await expect(page.get_by_label("Memory (MiB)")).to_have_value("128")
        await expect(page.get_by_label("World")).to_have_value("world")
        await page.get_by_label("Name", exact=True).fill("Browser world")
        await page.get_by_label("World").fill("browser_world")
        await page.locator(".srv-node", has_text="local").click()
        await screenshot(page, "servers-wizard-configure", full_page=False)
        await page.get_by_test_id("deploy-submit").click()

        # Steps 4-5: live progress, then the address to connect to.
        await page.wait_for_url(re.compile(r"/servers/[0-9a-f]{12}/deployment$"))
        await expect(page.get_by_test_id("deploy-progress")).to_be_visible()
        await screenshot(page, "servers-wizard-progress")
        online = page.get_by_test_id("server-online")
        await expect(online).to_be_visible(timeout=DEPLOYED_WITHIN_MS)
        address = page.get_by_test_id("connect-address")
        await expect(address).to_have_text(re.compile(r"^[0-9.]+:\d{2,5}$"))
        await expect(page.locator('[data-step="waiting_ready"]')).to_have_attribute(
            "data-state", "done"
        )
        await screenshot(page, "servers-wizard-online")

        # The overview: running, Stop enabled, Start disabled; Stop changes the badge in place.
        await online.get_by_role("link", name="Overview").click()
        await page.wait_for_url(re.compile(r"/servers/[0-9a-f]{12}$"))
        status = page.get_by_test_id("server-live").get_by_test_id("server-status")
        await expect(status).to_have_attribute("data-status", "running")
        await expect(page.locator('[data-power="start"]')).to_be_disabled()
        await page.evaluate("window.stillTheSamePage = true")
        await page.locator('[data-power="stop"]').click()
        await expect(page.get_by_test_id("power-notice")).to_contain_text("Stop sent")
        await expect(status).to_have_attribute("data-status", "offline", timeout=30_000)
        assert await page.evaluate("window.stillTheSamePage === true")
        await expect(page.locator('[data-power="start"]')).to_be_enabled()
        await screenshot(page, "servers-overview-stopped")

        # The list shows it, with its live status and address.
        await page.goto("/servers")
        row = page.locator("#server-rows tr", has_text="Browser world")
        await expect(row.get_by_test_id("server-status")).to_have_attribute(
            "data-status", "offline"
        )
        await expect(row.get_by_test_id("server-address")).to_have_text(re.compile(r":\d+$"))
        await screenshot(page, "servers-list")
        watch.assert_clean()

    async with watched_page(browser, game_panel.url, theme="dark", viewport=PHONE) as (page, watch):
        await sign_in(page, game_panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.goto("/servers")
        await page.locator("#server-rows a", has_text="Browser world").click()
        await expect(page.get_by_test_id("server-name")).to_have_text("Browser world")
        await screenshot(page, "servers-overview-dark-phone")
        watch.assert_clean()
