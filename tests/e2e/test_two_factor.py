"""Two-factor in Debian's chromium against the real embedded panel: enroll, then sign in with it.

Uses its own account (made with `stellarstack user create`), so the shared admin used by the
other browser tests keeps signing in with a password alone. Screenshots: test-artifacts/web/.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pyotp
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import PHONE, Panel, screenshot, watched_page
from tests.support.panel import LivePanel

EMAIL = "second-factor@example.test"
PASSWORD = "e2e second factor pass"


def create_account(live_panel: LivePanel) -> None:
    """An operator-made account in the live panel's database."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stellarstack",
            "user",
            "create",
            "--email",
            EMAIL,
            "--password",
            PASSWORD,
            "--role",
            "admin",
            "--data-dir",
            str(live_panel.data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def sign_in_with_password(page: Page) -> None:
    """Submit the sign-in form with the test account."""
    await page.goto("/auth/signin")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_enroll_then_sign_in_with_a_code_and_with_a_recovery_code(
    browser: Browser, panel: Panel, live_panel: LivePanel
) -> None:
    create_account(live_panel)
    async with watched_page(browser, panel.url) as (page, watch):
        watch.allowed_statuses = {401}
        await sign_in_with_password(page)
        await expect(page).to_have_url(f"{panel.url}/dashboard")

        await page.goto("/settings/security")
        await expect(page.get_by_test_id("two-factor-status")).to_have_text("Off")
        await expect(page.get_by_role("link", name="Security")).to_have_attribute(
            "aria-current", "page"
        )
        await screenshot(page, "security-off-light-desktop")
        await page.get_by_role("button", name="Set up two-factor").click()
        qr = page.get_by_role("img", name="QR code for your authenticator app")
        await expect(qr).to_be_visible()
        assert await qr.evaluate("img => img.naturalWidth > 0"), "the QR code did not load"
        secret = (await page.get_by_test_id("totp-secret").inner_text()).strip()
        await screenshot(page, "security-enroll-light-desktop")

        used_code = pyotp.TOTP(secret).now()
        await page.get_by_label("Code from the app").fill(used_code)
        await page.get_by_role("button", name="Turn on two-factor").click()
        codes = page.get_by_test_id("recovery-codes").locator("code")
        await expect(codes).to_have_count(10)
        recovery = (await codes.nth(0).inner_text()).strip()
        await expect(page.get_by_test_id("two-factor-status")).to_have_text("On")
        await screenshot(page, "security-recovery-codes-light-desktop")

        await page.get_by_role("button", name="Sign out").click()
        await sign_in_with_password(page)
        await expect(page).to_have_url(f"{panel.url}/auth/two-factor")
        await page.get_by_label("Code").fill(used_code)  # the code used to enroll: refused
        await page.get_by_role("button", name="Verify").click()
        await expect(page.get_by_role("alert")).to_contain_text("not valid")
        await screenshot(page, "two-factor-reused-code-light-desktop")
        next_code = pyotp.TOTP(secret).at(time.time() + 30)
        await page.get_by_label("Code").fill(next_code)
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(f"{panel.url}/dashboard")

        await page.get_by_role("button", name="Sign out").click()
        await sign_in_with_password(page)
        await page.get_by_label("Code").fill(recovery)
        await page.get_by_role("button", name="Verify").click()
        await expect(page).to_have_url(f"{panel.url}/dashboard")
        await page.goto("/settings/security")
        await expect(page.get_by_test_id("recovery-remaining")).to_have_text("9")
        watch.assert_clean()


async def test_the_challenge_page_on_a_phone_in_dark_mode(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, theme="dark", viewport=PHONE) as (page, watch):
        await page.context.add_cookies(
            [
                {
                    "name": "stellar_2fa",
                    "value": "not-a-real-challenge",
                    "url": panel.url + "/auth/two-factor",
                }
            ]
        )
        await page.goto("/auth/two-factor")
        await expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
        await screenshot(page, "two-factor-dark-phone")
        await page.get_by_label("Code").fill("123456")
        await page.get_by_role("button", name="Verify").click()
        # An unknown challenge sends the browser back to sign in, with the reason.
        await expect(page).to_have_url(f"{panel.url}/auth/signin")
        await expect(page.get_by_role("status")).to_contain_text("expired or was already used")
        watch.assert_clean()
