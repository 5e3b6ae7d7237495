"""Account pages in Debian's chromium: settings tabs, sessions, password, forgot, sign-up.

The live panel is shared by every browser test, so the admin's password is never changed here
and the display name is put back at the end.
"""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.e2e.conftest import Panel, screenshot, sign_in, watched_page

HOSTILE = "Ada <img src=x onerror=alert(1)>"


async def test_profile_sessions_and_password_tabs_work(browser: Browser, panel: Panel) -> None:
    async with (
        watched_page(browser, panel.url) as (page, watch),
        watched_page(browser, panel.url) as (other, other_watch),
    ):
        watch.allowed_statuses.add(422)
        await sign_in(other, panel)
        await other.wait_for_url(re.compile(r"/dashboard$"))
        await sign_in(page, panel)
        await page.wait_for_url(re.compile(r"/dashboard$"))

        await page.goto("/settings")
        await expect(page.get_by_role("link", name="Profile")).to_have_attribute(
            "aria-current", "page"
        )
        await page.get_by_label("Display name").fill(HOSTILE)
        await page.get_by_role("button", name="Save profile").click()
        await expect(page.get_by_text("Your profile has been saved.")).to_be_visible()
        await expect(page.get_by_test_id("user-name")).to_have_text(HOSTILE)  # shown as text
        await screenshot(page, "settings-profile-light-desktop")

        await page.get_by_role("link", name="Password").click()
        await page.get_by_label("Current password").fill("not my password")
        await page.get_by_label("New password").fill("a new passphrase")
        await page.get_by_role("button", name="Change password").click()
        await expect(page.get_by_role("alert")).to_have_text("Your current password is incorrect.")
        await screenshot(page, "settings-password-error-light-desktop")

        await page.get_by_role("link", name="Sessions").click()
        sessions = page.get_by_test_id("session")
        assert await sessions.count() >= 2
        await expect(page.get_by_text("This browser")).to_be_visible()
        await screenshot(page, "settings-sessions-light-desktop")
        await page.get_by_role("button", name="Sign out all others").click()
        await expect(page.get_by_text(re.compile(r"Signed out \d+ other session"))).to_be_visible()
        await expect(sessions).to_have_count(1)

        await other.goto("/dashboard")
        await other.wait_for_url(re.compile(r"/auth/signin"))

        await page.goto("/settings")
        await page.get_by_label("Display name").fill("Admin")
        await page.get_by_role("button", name="Save profile").click()
        await expect(page.get_by_test_id("user-name")).to_have_text("Admin")
        watch.assert_clean()
        other_watch.assert_clean()


async def test_forgot_password_and_closed_sign_up_pages(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url) as (page, watch):
        await page.goto("/auth/signin")
        await page.get_by_role("link", name="Forgot your password?").click()
        await page.get_by_label("Email").fill("nobody@example.test")
        await page.get_by_role("button", name="Send reset link").click()
        await expect(page.get_by_test_id("forgot-sent")).to_be_visible()
        await screenshot(page, "forgot-sent-light-desktop")
        await page.goto("/auth/signup")
        await expect(page.get_by_text("Sign-up is closed on this panel.")).to_be_visible()
        await screenshot(page, "signup-closed-light-desktop")
        await page.goto("/auth/reset?token=forged")
        await page.get_by_label("New password", exact=True).fill("whatever pass")
        watch.allowed_statuses.add(400)
        await page.get_by_role("button", name="Set new password").click()
        await expect(page.get_by_role("alert")).to_contain_text("invalid or has expired")
        await screenshot(page, "reset-invalid-light-desktop")
        watch.assert_clean()
