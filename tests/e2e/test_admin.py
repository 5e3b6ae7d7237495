"""Access control in Debian's chromium: an API key made in settings, a user suspended from the
admin pages, and the audit log that recorded both.

Screenshots land in test-artifacts/web/ (admin-*, api-keys-*).
"""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import Browser, expect

from tests.e2e.conftest import PHONE, Panel, screenshot, sign_in, watched_page

HOSTILE = "<img src=x onerror=alert(1)>"


async def test_admin_creates_a_key_suspends_a_user_and_reads_the_audit_log(
    browser: Browser, panel: Panel
) -> None:
    player = f"player-{uuid.uuid4().hex[:8]}@example.test"
    async with watched_page(browser, panel.url) as (page, watch):
        await sign_in(page, panel)
        await expect(page).to_have_url(re.compile(r"/dashboard$"))

        # an application key, shown once, with a hostile name rendered as text
        await page.goto("/settings/api-keys")
        await expect(page.get_by_role("link", name="API keys")).to_have_attribute(
            "aria-current", "page"
        )
        await page.get_by_label("Name", exact=True).fill(f"provisioning {HOSTILE}")
        await page.get_by_label("Kind").select_option("application")
        await page.get_by_role("checkbox", name=re.compile(r"^user\.create")).check()
        await page.get_by_role("checkbox", name=re.compile(r"^user\.view")).check()
        await page.get_by_role("button", name="Create key").click()
        token = (await page.get_by_test_id("new-token").inner_text()).strip()
        assert token.startswith("strk_")
        await expect(page.get_by_test_id("api-key").first).to_contain_text(HOSTILE)
        await screenshot(page, "api-keys-created")

        # the key works against the admin API from outside the browser
        created = httpx.post(
            f"{panel.url}/api/v1/admin/users",
            json={"email": player, "password": "a long enough password", "name": "Player"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text

        # find the new account and suspend it
        await page.goto("/admin")
        await page.get_by_role("link", name="Manage users").click()
        await page.get_by_label("Search by email or name").fill(player)
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("link", name="Player").click()
        await page.get_by_label("Reason", exact=True).fill("Testing <b>suspension</b>")
        await page.get_by_role("button", name="Suspend account").click()
        await expect(page.locator(".flash-success")).to_contain_text("Suspended.")
        await expect(page.get_by_test_id("suspend-reason")).to_have_text(
            "Testing <b>suspension</b>"
        )
        await screenshot(page, "admin-user-suspended")

        # the audit log has both actions
        await page.goto("/admin/audit?action=user.*")
        await expect(page.get_by_test_id("audit-row").first).to_contain_text("user.suspend")
        await screenshot(page, "admin-audit")
        await page.goto("/admin/audit?action=api_key.*")
        await expect(page.get_by_test_id("audit-row").first).to_contain_text("api_key.create")

        # revoking the key stops it at once
        await page.goto("/settings/api-keys")
        await page.get_by_role("button", name=re.compile(r"^Revoke provisioning")).click()
        await expect(page.locator(".flash-success")).to_contain_text("Revoked")
        refused = httpx.get(
            f"{panel.url}/api/v1/admin/users",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert refused.status_code == 401
        watch.assert_clean()


async def test_admin_pages_on_a_phone(browser: Browser, panel: Panel) -> None:
    async with watched_page(browser, panel.url, viewport=PHONE, theme="dark") as (page, watch):
        await sign_in(page, panel)
        await expect(page).to_have_url(re.compile(r"/dashboard$"))
        for path, name in [
            ("/admin/users", "admin-users-phone"),
            ("/admin/audit", "admin-audit-phone"),
        ]:
            await page.goto(path)
            await expect(page.locator("h1")).to_be_visible()
            await screenshot(page, name)
        watch.assert_clean()
