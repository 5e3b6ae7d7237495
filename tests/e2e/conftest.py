"""Browser fixtures: built assets, the live panel, and pages that record every error."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
    Response,
    ViewportSize,
)

from stellarstack.panel.web.assets import STATIC_DIR, STATIC_SRC_DIR, VENDOR_FILES
from tests.support.panel import LivePanel
from tests.support.services import require

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"

Theme = Literal["light", "dark"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def _build_is_stale() -> bool:
    stamp = STATIC_DIR / "build.json"
    if not stamp.is_file() or any(not (STATIC_DIR / name).is_file() for name in VENDOR_FILES):
        return True
    built = stamp.stat().st_mtime
    sources = [ROOT / "package-lock.json", *STATIC_SRC_DIR.rglob("*")]
    return any(path.stat().st_mtime > built for path in sources if path.is_file())


@pytest.fixture(scope="session")
def built_assets() -> None:
    """Run scripts/build-assets.sh when the build is missing or older than its sources."""
    if not _build_is_stale():
        return
    require(
        shutil.which("node") is not None and shutil.which("npm") is not None,
        "the web assets are not built and Node.js/npm are missing (run scripts/build-assets.sh)",
    )
    result = subprocess.run(
        ["sh", str(ROOT / "scripts" / "build-assets.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"build-assets failed:\n{result.stdout}\n{result.stderr}"


@dataclass(frozen=True, slots=True)
class Panel:
    """The live panel plus the credentials it printed on first start."""

    url: str
    admin_email: str
    admin_password: str


@pytest.fixture(scope="session")
def panel(built_assets: None, live_panel: LivePanel) -> Panel:
    """The real embedded panel, serving the built assets, with its printed admin credentials."""
    assert live_panel.admin_email and live_panel.admin_password, live_panel.text()
    htmx = httpx.get(f"{live_panel.url}/static/vendor/htmx.min.js", timeout=5)
    assert htmx.status_code == 200, "the panel started before the assets were built"
    return Panel(live_panel.url, live_panel.admin_email, live_panel.admin_password)


@dataclass
class Watch:
    """Everything that went wrong on a page: console errors, uncaught errors, failed loads."""

    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep console errors (not warnings)."""
        if message.type == "error" and not self._is_allowed_load_error(message.text):
            self.console.append(message.text)

    def _is_allowed_load_error(self, text: str) -> bool:
        return any(f"status of {status}" in text for status in self.allowed_statuses)

    def on_page_error(self, error: Exception) -> None:
        """Keep uncaught exceptions."""
        self.page_errors.append(str(error))

    def on_response(self, response: Response) -> None:
        """Keep responses that failed (404 for an asset, 500 for a page)."""
        if response.status >= 400 and response.status not in self.allowed_statuses:
            self.failed.append(f"{response.status} {response.url}")

    def on_request_failed(self, request: Request) -> None:
        """Keep requests that never got an answer (not those cut short by a navigation)."""
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"failed {request.url}: {request.failure}")

    def assert_clean(self) -> None:
        """No console error, no uncaught exception, no failed load."""
        assert not self.console, f"console errors: {self.console}"
        assert not self.page_errors, f"page errors: {self.page_errors}"
        assert not self.failed, f"failed loads: {self.failed}"


@asynccontextmanager
async def watched_page(
    browser: Browser,
    base_url: str,
    *,
    theme: Theme = "light",
    viewport: ViewportSize = DESKTOP,
) -> AsyncIterator[tuple[Page, Watch]]:
    """A fresh browser context (own cookies and storage) and a page that records errors."""
    phone = viewport["width"] < 600
    context = await browser.new_context(
        base_url=base_url,
        viewport=viewport,
        color_scheme=theme,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
    )
    page = await context.new_page()
    watch = Watch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    page.on("response", watch.on_response)
    page.on("requestfailed", watch.on_request_failed)
    try:
        yield page, watch
    finally:
        await context.close()


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under test-artifacts/web/ and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def sign_in(page: Page, panel: Panel, password: str | None = None) -> None:
    """Fill in and submit the sign-in form."""
    await page.goto("/auth/signin")
    await page.get_by_label("Email").fill(panel.admin_email)
    await page.get_by_label("Password").fill(password or panel.admin_password)
    await page.get_by_role("button", name="Sign in").click()
