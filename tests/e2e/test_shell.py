"""The web shell in Debian's chromium: pages load cleanly, sign-in works, themes persist.

Screenshots land in test-artifacts/web/ (both themes, desktop and phone) for a person to look at.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from stellarstack.panel.web.assets import VENDOR_FILES
from tests.e2e.conftest import DESKTOP, PHONE, Panel, Theme, screenshot, sign_in, watched_page

VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_public_pages_load_without_errors(
    browser: Browser, panel: Panel, theme: Theme, device: str
) -> None:
    async with watched_page(browser, panel.url, theme=theme, viewport=VIEWPORTS[device]) as (
        page,
        watch,
    ):
        for path, name in [("/", "landing"), ("/auth/signin", "signin")]:
            await page.goto(path)
            await expect(page.locator("html")).to_have_attribute("data-theme", theme)
            await expect(page.get_by_role("link", name="StellarStack").first).to_be_visible()
            await screenshot(page, f"{name}-{theme}-{device}")
        watch.assert_clean()
        # htmx loaded (it reads its config from the meta tag, so eval stays off under the CSP)
        assert await page.evaluate("typeof window.htmx === 'object' && !htmx.config.allowEval")


async def test_every_vendor_asset_is_served(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        await page.goto("/")
        for name in VENDOR_FILES:
            response = await page.request.get(f"/static/{name}")
            assert response.status == 200, name
            assert len(await response.body()) > 1000, name
        watch.assert_clean()


async def test_vendor_bundles_work_in_the_browser(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        await page.goto("/")
        for name in [
            "ext/sse.js",
            "ext/ws.js",
            "codemirror/codemirror.js",
            "uplot/uPlot.iife.min.js",
        ]:
            await page.add_script_tag(url=f"/static/vendor/{name}")
        await page.add_style_tag(url="/static/vendor/uplot/uPlot.min.css")
        doc = await page.evaluate(
            """() => {
                const cm = window.StellarCodeMirror;
                const parent = document.createElement("div");
                document.body.append(parent);
                const view = new cm.EditorView({
                    doc: "motd=Hello\\nmax-players=20",
                    extensions: [cm.basicSetup, cm.languages.properties()],
                    parent,
                });
                return view.state.doc.toString();
            }"""
        )
        assert doc == "motd=Hello\nmax-players=20"
        await expect(page.locator(".cm-editor")).to_have_count(1)
        charts = await page.evaluate(
            """() => {
                new uPlot({width: 300, height: 120, series: [{}, {label: "CPU"}]},
                          [[1, 2, 3], [10, 40, 25]], document.body);
                return document.querySelectorAll(".uplot canvas").length;
            }"""
        )
        assert charts == 1
        watch.assert_clean()


@pytest.mark.parametrize("device", ["desktop", "phone"])
@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_admin_signs_in_with_the_printed_credentials(
    browser: Browser, panel: Panel, theme: Theme, device: str
) -> None:
    async with watched_page(browser, panel.url, theme=theme, viewport=VIEWPORTS[device]) as (
        page,
        watch,
    ):
        await sign_in(page, panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await expect(page.get_by_test_id("user-email")).to_have_text(panel.admin_email)
        await screenshot(page, f"dashboard-{theme}-{device}")
        for path, name in [("/servers", "servers"), ("/admin", "admin"), ("/settings", "settings")]:
            await page.goto(path)
            await expect(page.get_by_role("heading", level=1)).to_be_visible()
            if device == "desktop" or name == "admin":
                await screenshot(page, f"{name}-{theme}-{device}")
        watch.assert_clean()


async def test_wrong_password_shows_the_error(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        watch.allowed_statuses.add(401)
        await sign_in(page, panel, password="definitely-not-it")
        alert = page.get_by_role("alert")
        await expect(alert).to_have_text("The email or password is incorrect.")
        await expect(page.get_by_label("Email")).to_have_value(panel.admin_email)
        assert page.url.endswith("/auth/signin")
        await screenshot(page, "signin-error-light-desktop")
        watch.assert_clean()


async def test_theme_toggle_switches_and_persists(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, theme="light") as (page, watch):
        await page.goto("/")
        html = page.locator("html")
        await expect(html).to_have_attribute("data-theme", "light")
        light_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        await page.get_by_role("button", name="Switch to dark theme").click()
        await expect(html).to_have_attribute("data-theme", "dark")
        assert await page.evaluate("localStorage.getItem('stellar-theme')") == "dark"
        await page.reload()
        await expect(html).to_have_attribute("data-theme", "dark")
        dark_bg = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert dark_bg != light_bg
        await page.get_by_role("button", name="Switch to light theme").click()
        await page.goto("/auth/signin")
        await expect(html).to_have_attribute("data-theme", "light")
        watch.assert_clean()


async def test_phone_navigation_opens_and_closes(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, theme="dark", viewport=PHONE) as (page, watch):
        await sign_in(page, panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        nav_link = page.get_by_role("link", name="Servers", exact=True)
        await expect(nav_link).to_be_hidden()
        menu = page.get_by_role("button", name="Open navigation")
        await menu.click()
        await expect(nav_link).to_be_visible()
        await expect(page.locator("[data-sidebar-toggle]")).to_have_attribute(
            "aria-expanded", "true"
        )
        await screenshot(page, "nav-open-dark-phone", full_page=False)
        await page.keyboard.press("Escape")
        await expect(nav_link).to_be_hidden()
        await menu.click()
        await nav_link.click()
        await page.wait_for_url(re.compile(r"/servers$"))
        watch.assert_clean()


async def test_sign_out_returns_to_sign_in_with_a_note(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        await sign_in(page, panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/auth/signin$"))
        await expect(page.get_by_role("status")).to_contain_text("You have been signed out.")
        await screenshot(page, "signed-out-light-desktop")
        await page.goto("/dashboard")
        await page.wait_for_url(re.compile(r"/auth/signin\?next=%2Fdashboard$"))
        watch.assert_clean()


async def test_unknown_page_shows_the_friendly_404(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, theme="dark") as (page, watch):
        watch.allowed_statuses.add(404)
        response = await page.goto("/no/such/page")
        assert response is not None and response.status == 404
        await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        await screenshot(page, "404-dark-desktop")
        watch.assert_clean()


async def test_settings_theme_choice_can_return_to_the_system(
    browser: Browser, panel: Panel
) -> None:
    async with watched_page(browser, panel.url, theme="dark") as (page, watch):
        await sign_in(page, panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))
        await page.goto("/settings")
        html = page.locator("html")
        system = page.get_by_role("button", name="System")
        await expect(system).to_have_attribute("aria-pressed", "true")
        await page.get_by_role("button", name="Light", exact=True).click()
        await expect(html).to_have_attribute("data-theme", "light")
        await screenshot(page, "settings-light-chosen-desktop")
        await system.click()
        await expect(html).to_have_attribute("data-theme", "dark")  # the emulated system
        assert await page.evaluate("localStorage.getItem('stellar-theme')") is None
        watch.assert_clean()
