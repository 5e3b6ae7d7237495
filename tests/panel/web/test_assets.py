"""The static assets: served when built, and pages that still work when they are not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from stellarstack.panel import web
from stellarstack.panel.db.session import Database
from stellarstack.panel.web import assets
from stellarstack.panel.web.assets import STATIC_SRC_DIR, VENDOR_FILES, detect_build
from stellarstack.settings import PanelSettings


def fake_build(root: Path, *, vendor: bool = True) -> Path:
    """A built folder like scripts/build-assets.sh makes (with or without vendor files)."""
    (root / "css").mkdir(parents=True)
    (root / "css/app.css").write_text("body{}")
    (root / "build.json").write_text(json.dumps({"version": "abc123def456"}))
    for name in VENDOR_FILES if vendor else ():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("/* vendor */")
    return root


def test_a_complete_build_is_served_with_its_version(tmp_path: Path) -> None:
    build = detect_build(fake_build(tmp_path / "static"))
    assert build.vendor and build.version == "abc123def456" and not build.missing


def test_a_missing_build_falls_back_to_our_sources(tmp_path: Path) -> None:
    build = detect_build(tmp_path / "nothing-here")
    assert build.directory == STATIC_SRC_DIR
    assert not build.vendor
    assert build.missing == VENDOR_FILES


def test_a_partial_build_lists_what_is_missing(tmp_path: Path) -> None:
    root = fake_build(tmp_path / "static")
    (root / "vendor/htmx.min.js").unlink()
    build = detect_build(root)
    assert not build.vendor and build.missing == ("vendor/htmx.min.js",)


def test_a_garbled_build_file_gives_a_safe_version(tmp_path: Path) -> None:
    root = fake_build(tmp_path / "static")
    (root / "build.json").write_text('{"version": "\\"><script>"}')
    assert detect_build(root).version == "dev"


@pytest.fixture
async def unbuilt_client(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    panel_settings: PanelSettings,
    panel_database: Database,
) -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[str, dict[str, Any]]]]]:
    """A page-only app whose assets were never built, and the warnings it logged."""
    warnings: list[tuple[str, dict[str, Any]]] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append((event, fields))

    monkeypatch.setattr(assets, "log", Recorder())
    app = FastAPI()
    app.state.settings, app.state.database = panel_settings, panel_database
    app.include_router(web.router)
    web.mount_static(app, static_dir=tmp_path / "never-built")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, warnings


async def test_without_a_build_the_panel_warns_and_pages_degrade(
    unbuilt_client: tuple[httpx.AsyncClient, list[tuple[str, dict[str, Any]]]],
) -> None:
    client, warnings = unbuilt_client
    assert [event for event, _ in warnings] == ["web.assets_not_built"]
    assert "scripts/build-assets.sh" in warnings[0][1]["fix"]
    page = await client.get("/")
    assert page.status_code == 200
    assert "vendor/htmx.min.js" not in page.text
    css = await client.get("/static/css/app.css")
    assert css.status_code == 200 and '@import "tokens.css"' in css.text
    tokens = await client.get("/static/css/tokens.css")  # the browser follows the imports
    assert tokens.status_code == 200 and "--accent" in tokens.text
    assert (await client.get("/static/js/app.js")).status_code == 200


async def test_static_paths_cannot_leave_the_folder(
    unbuilt_client: tuple[httpx.AsyncClient, list[tuple[str, dict[str, Any]]]],
) -> None:
    client, _ = unbuilt_client
    for path in ["/static/../assets.py", "/static/%2e%2e/assets.py", "/static/..%2fassets.py"]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "mount_static" not in response.text
