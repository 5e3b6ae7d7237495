"""Blueprints in Debian's chromium: browse the catalogue, open a game, import an egg.

Screenshots land in test-artifacts/web/blueprints-*.png for a person to look at.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.importing import install_catalog
from stellarstack.settings import PanelSettings
from tests.blueprints.conftest import EGGS_DIR
from tests.e2e.conftest import DESKTOP, PHONE, Panel, Theme, screenshot, sign_in, watched_page
from tests.support.panel import LivePanel


@pytest.fixture(scope="module")
async def catalogue(panel: Panel, live_panel: LivePanel) -> Panel:
    """The live panel with the shipped catalogue installed (what the panel does at start)."""
    settings = PanelSettings(data_dir=live_panel.data_dir)
    database = Database(settings.effective_database_url)
    try:
        summary = await install_catalog(database, settings)
    finally:
        await database.dispose()
    assert len(summary.created) + len(summary.unchanged) >= 20
    return panel


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_catalogue_search_and_detail(
    browser: Browser, catalogue: Panel, theme: Theme
) -> None:
    async with watched_page(browser, catalogue.url, theme=theme) as (page, watch):
        await sign_in(page, catalogue)
        await page.get_by_role("link", name="Blueprints").first.click()
        await expect(page).to_have_url(f"{catalogue.url}/blueprints")
        cards = page.get_by_test_id("blueprint-card")
        await expect(cards.first).to_be_visible()
        assert await cards.count() >= 20
        await screenshot(page, f"blueprints-catalogue-{theme}")

        await page.get_by_label("Search blueprints").fill("valheim")
        await page.get_by_role("button", name="Search").click()
        await expect(cards).to_have_count(1)
        await cards.first.click()
        await expect(page.get_by_test_id("blueprint-name")).to_have_text("Valheim")
        await expect(page.get_by_test_id("ports")).to_contain_text("2456")
        await expect(page.get_by_test_id("variables")).to_contain_text("SERVER_NAME")
        await screenshot(page, f"blueprints-detail-{theme}")
        watch.assert_clean()


async def test_catalogue_on_a_phone(browser: Browser, catalogue: Panel) -> None:
    async with watched_page(browser, catalogue.url, viewport=PHONE) as (page, watch):
        await sign_in(page, catalogue)
        await page.goto("/blueprints?category=minecraft")
        await expect(page.get_by_test_id("blueprint-card")).to_have_count(5)
        await screenshot(page, "blueprints-catalogue-phone")
        await page.goto("/blueprints/luanti")
        await expect(page.get_by_test_id("blueprint-name")).to_contain_text("Luanti")
        await screenshot(page, "blueprints-detail-phone")
        watch.assert_clean()


async def test_import_an_egg_preview_then_save(browser: Browser, catalogue: Panel) -> None:
    async with watched_page(browser, catalogue.url, viewport=DESKTOP) as (page, watch):
        await sign_in(page, catalogue)
        await page.goto("/blueprints")
        await page.get_by_role("link", name="Import or sync").click()
        await page.get_by_label("File", exact=True).set_input_files(
            str(EGGS_DIR / "ptdl-v1-terraria-vanilla.json")
        )
        await page.get_by_role("button", name="Preview").click()
        preview = page.get_by_test_id("import-preview")
        await expect(preview).to_be_visible()
        await expect(page.get_by_test_id("preview-name")).to_have_text("Terraria Vanilla")
        await expect(page.get_by_test_id("unmapped")).to_contain_text(
            "the 'xml' config parser is not supported"
        )
        await screenshot(page, "blueprints-import-preview")

        await page.get_by_role("button", name="Save blueprint").click()
        await expect(page).to_have_url(f"{catalogue.url}/blueprints/terraria-vanilla")
        await expect(page.get_by_text("Imported Terraria Vanilla.")).to_be_visible()
        await expect(page.get_by_test_id("import-report")).to_contain_text("config.logs")
        await screenshot(page, "blueprints-imported-detail")
        watch.assert_clean()
