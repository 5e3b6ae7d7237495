"""Front-end assets: where the build puts them, whether it ran, and the `/static` mount.

`scripts/build-assets.sh` copies the npm libraries into `static/vendor/` and our own CSS/JS
from `static_src/` into `static/` (git-ignored). When the build has not run, the panel still
starts: it serves `static_src/` so pages keep their styles, leaves the vendor `<script>` tags
out, and logs how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from stellarstack.logs import get_logger

__all__ = [
    "STATIC_DIR",
    "STATIC_SRC_DIR",
    "VENDOR_FILES",
    "AssetBuild",
    "asset_build",
    "detect_build",
    "mount_static",
]

log = get_logger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
STATIC_SRC_DIR = WEB_DIR / "static_src"
OWN_MARKER = "css/app.css"

VENDOR_FILES: tuple[str, ...] = (
    "vendor/htmx.min.js",
    "vendor/ext/sse.js",
    "vendor/ext/ws.js",
    "vendor/xterm/xterm.js",
    "vendor/xterm/xterm.css",
    "vendor/xterm/addon-fit.js",
    "vendor/uplot/uPlot.iife.min.js",
    "vendor/uplot/uPlot.min.css",
    "vendor/codemirror/codemirror.js",
)


@dataclass(frozen=True, slots=True)
class AssetBuild:
    """What `/static` serves: a folder, a cache-busting version, and whether vendor JS is there."""

    directory: Path
    version: str
    vendor: bool
    missing: tuple[str, ...] = ()

    def url(self, request: Request, path: str) -> str:
        """The URL of one asset, versioned so browsers refetch it after a rebuild."""
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return f"{root}/static/{path.lstrip('/')}?v={self.version}"


def _build_version(directory: Path) -> str:
    try:
        data = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return "dev"
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) and version.isalnum() else "dev"


def detect_build(static_dir: Path = STATIC_DIR, source_dir: Path = STATIC_SRC_DIR) -> AssetBuild:
    """Inspect the built folder; fall back to the sources when it is missing or incomplete."""
    if not (static_dir / OWN_MARKER).is_file():
        return AssetBuild(source_dir, "src", vendor=False, missing=VENDOR_FILES)
    missing = tuple(name for name in VENDOR_FILES if not (static_dir / name).is_file())
    return AssetBuild(static_dir, _build_version(static_dir), vendor=not missing, missing=missing)


def asset_build(request: Request) -> AssetBuild:
    """The asset build the app mounted (detected now if `mount_static` was not called)."""
    build = getattr(request.app.state, "web_assets", None)
    if isinstance(build, AssetBuild):
        return build
    build = detect_build()
    request.app.state.web_assets = build
    return build


def mount_static(
    app: FastAPI, *, static_dir: Path = STATIC_DIR, source_dir: Path = STATIC_SRC_DIR
) -> None:
    """Serve the built assets at `/static`; warn (and degrade) when they were not built."""
    build = detect_build(static_dir, source_dir)
    if not build.vendor:
        log.warning(
            "web.assets_not_built",
            detail="console, charts and editor are disabled until the assets are built",
            fix="run scripts/build-assets.sh (needs Node.js and npm)",
            missing=list(build.missing),
            serving=str(build.directory),
        )
    app.state.web_assets = build
    app.mount("/static", StaticFiles(directory=build.directory), name="static")
