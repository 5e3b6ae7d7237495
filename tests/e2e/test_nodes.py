"""Node pages in chromium on the real embedded panel: list, add node, node detail.

The embedded default registers its own daemon as node `local` on first start, so the list
is never empty here. Screenshots land in test-artifacts/web/nodes-*.png.
"""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.e2e.conftest import PHONE, Panel, screenshot, sign_in, watched_page


async def test_an_admin_adds_a_node_and_opens_the_local_node(
    browser: Browser, panel: Panel
) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        await sign_in(page, panel)
        await page.goto("/nodes")
        await expect(page.get_by_role("heading", name="Nodes")).to_be_visible()
        local = page.get_by_role("link", name=re.compile(r"^local"))
        await expect(local).to_be_visible()
        await screenshot(page, "nodes-list")

        await page.get_by_role("link", name="Add node").click()
        await page.get_by_label("Name").fill("eu-central-1")
        await page.get_by_label("Region").fill("eu-central")
        await page.get_by_label("Max servers").fill("40")
        await page.get_by_role("button", name="Create install command").click()
        command = page.get_by_test_id("install-command")
        await expect(command).to_contain_text("strk_reg_")
        await expect(command).to_contain_text("install-daemon.sh")
        await screenshot(page, "nodes-added")

        await page.goto("/nodes")
        await page.get_by_role("link", name=re.compile(r"^local")).click()
        await expect(page.locator("#node-chart")).to_be_visible()
        await page.get_by_label("IP address").fill("127.0.0.1")
        await page.get_by_label("Ports").fill("40000-40004, 40010")
        await page.get_by_role("button", name="Add ports").click()
        await expect(page.get_by_text("Added 6 port(s) on 127.0.0.1.")).to_be_visible()
        table = page.get_by_test_id("allocations")
        added = table.locator("tbody td.num", has_text=re.compile(r"^\s*400(0[0-4]|10)\s*$"))
        await expect(added).to_have_count(6)  # beside the local node's first allocations
        await expect(table).to_contain_text("40010")
        await screenshot(page, "nodes-detail")
        watch.assert_clean()


async def test_the_node_list_fits_a_phone(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, theme="dark", viewport=PHONE) as (page, watch):
        await sign_in(page, panel)
        await page.goto("/nodes")
        await expect(page.get_by_role("link", name="Add node")).to_be_visible()
        await screenshot(page, "nodes-list-dark-phone")
        watch.assert_clean()
