"""The Settings tab in a real browser on the real `stellarstack up` (process runtime).

The test game is deployed through the API and reaches RUNNING on the embedded node; then, in
the browser, the user renames it (the header follows), and reinstalls it: the status shows
REINSTALLING and comes back to RUNNING without a reload. On a phone, in the dark theme, an
administrator suspends it with a reason and lifts the suspension.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
from playwright.async_api import Browser, expect

from tests.e2e import test_servers
from tests.e2e.conftest import PHONE, Panel, screenshot, sign_in, watched_page
from tests.support.game_image import GAME_BLUEPRINT_SLUG

# A live panel of its own (process runtime, the test game, one free loopback port).
game_panel = test_servers.game_panel

RUNNING_WITHIN_S = 90.0


def _deploy_running(panel: Panel, name: str) -> str:
    """Deploy the test game through the API and wait for RUNNING; return its identifier."""
    with httpx.Client(base_url=panel.url, timeout=30, headers={"Origin": panel.url}) as client:
        signed_in = client.post(
            "/api/v1/auth/sign-in",
            json={"email": panel.admin_email, "password": panel.admin_password},
        )
        assert signed_in.status_code == 200, signed_in.text
        client.headers["X-CSRF-Token"] = client.cookies.get("stellar_csrf") or ""
        created = client.post(
            "/api/v1/servers",
            json={"name": name, "blueprint": GAME_BLUEPRINT_SLUG, "variables": {}},
        )
        assert created.status_code == 202, created.text
        server = created.json()["data"]["server"]
        deadline = time.monotonic() + RUNNING_WITHIN_S
        status = server["status"]
        while status != "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.get(f"/api/v1/servers/{server['id']}").json()["data"]["status"]
        assert status == "running", f"the test game did not reach RUNNING: {status}"
        return str(server["identifier"])


async def test_rename_shows_in_the_header_and_a_reinstall_comes_back_running(
    browser: Browser, game_panel: Panel
) -> None:
    identifier = _deploy_running(game_panel, "Settings world")
    async with watched_page(browser, game_panel.url) as (page, watch):
        await sign_in(page, game_panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.goto(f"/servers/{identifier}")
        tabs = page.get_by_role("navigation", name="Server sections")
        await tabs.get_by_role("link", name="Settings").click()
        await page.wait_for_url(re.compile(rf"/servers/{identifier}/settings$"))
        await expect(page.get_by_test_id("server-name")).to_have_text("Settings world")
        status = page.get_by_test_id("settings-status").get_by_test_id("server-status")
        await expect(status).to_have_attribute("data-status", "running")

        # Rename: the header (and the breadcrumb) follow after the save.
        await page.get_by_label("Name", exact=True).fill("Renamed <world>")
        await page.get_by_label("Description").fill("Weekend server")
        await page.get_by_test_id("save-general").click()
        await expect(page.get_by_test_id("server-name")).to_have_text("Renamed <world>")
        await expect(page.locator(".flash", has_text="Settings saved.")).to_be_visible()
        await expect(page.get_by_label("Description")).to_have_value("Weekend server")
        await screenshot(page, "server-settings-saved")

        # A refused value comes back beside its field, with the input kept (a 422 page).
        watch.allowed_statuses.add(422)
        await page.get_by_label("World").fill("not a world!")
        await page.get_by_test_id("save-variables").click()
        await expect(page.locator("#var-WORLD_NAME-error")).to_contain_text("World")
        await expect(page.get_by_label("World")).to_have_value("not a world!")
        await screenshot(page, "server-settings-refused", full_page=False)

        # Reinstall: confirm, then REINSTALLING, then RUNNING again without a reload.
        await page.goto(f"/servers/{identifier}/settings")
        await page.get_by_label("I understand the server stops while it reinstalls").check()
        await page.get_by_test_id("reinstall-submit").click()
        await expect(
            page.locator(".flash", has_text="Reinstalling Renamed <world>")
        ).to_be_visible()
        status = page.get_by_test_id("settings-status").get_by_test_id("server-status")
        await screenshot(page, "server-settings-reinstalling")
        await page.evaluate("window.stillTheSamePage = true")
        # The test game has no install script: its reinstall may be over before the page
        # shows it, so the proof is the finished reinstall deployment, then RUNNING again.
        await expect(status).to_have_attribute("data-status", "running", timeout=60_000)
        deadline = time.monotonic() + 60
        while True:
            listed = await page.request.get(f"/api/v1/servers/{identifier}/deployments")
            assert listed.ok, await listed.text()
            kinds = {(d["kind"], d["status"]) for d in (await listed.json())["data"]}
            if ("reinstall", "succeeded") in kinds or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert ("reinstall", "succeeded") in kinds, kinds
        await expect(status).to_have_attribute("data-status", "running", timeout=60_000)
        assert await page.evaluate("window.stillTheSamePage === true")
        await screenshot(page, "server-settings-reinstalled")
        watch.assert_clean()

    async with watched_page(browser, game_panel.url, theme="dark", viewport=PHONE) as (page, watch):
        await sign_in(page, game_panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.goto(f"/servers/{identifier}/settings")
        await expect(page.get_by_test_id("settings-suspend")).to_be_visible()
        await screenshot(page, "server-settings-dark-phone")

        # An administrator suspends it with a reason (shown escaped), then lifts it.
        await page.get_by_label("Reason (shown to the server's users)").fill("<b>unpaid</b>")
        await page.get_by_test_id("suspend-submit").click()
        note = page.get_by_test_id("settings-status").get_by_test_id("suspended-note")
        await expect(note).to_have_text("Suspended: <b>unpaid</b>")
        await expect(page.get_by_test_id("reinstall-submit")).to_be_disabled()
        await screenshot(page, "server-settings-suspended-phone", full_page=False)
        await page.get_by_test_id("unsuspend-submit").click()
        await expect(page.get_by_test_id("suspend-submit")).to_be_visible()
        await expect(note).to_be_hidden()
        watch.assert_clean()
