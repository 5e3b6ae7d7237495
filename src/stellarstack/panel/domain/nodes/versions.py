"""Panel ↔ daemon version compatibility (spec §10.6): same major, at most one minor apart."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Compatibility", "check_compatibility", "parse_version"]

_VERSION = re.compile(r"v?(\d{1,6})\.(\d{1,6})(?:\.(\d{1,6}))?(?:[-+.][0-9A-Za-z.+-]{0,64})?")


@dataclass(frozen=True, slots=True)
class Compatibility:
    """Whether a daemon version works with this panel, and a sentence saying why (not)."""

    compatible: bool
    message: str


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a version like `1.2.3`, `v1.2` or `1.2.3-rc1`; None if not one."""
    match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def check_compatibility(panel_version: str, daemon_version: str | None) -> Compatibility:
    """Panel X.Y accepts daemons X.(Y-1) to X.(Y+1); anything else is a mismatch to flag."""
    if not daemon_version:
        return Compatibility(True, "The daemon has not reported its version yet.")
    panel = parse_version(panel_version)
    daemon = parse_version(daemon_version)
    if panel is None or daemon is None:
        return Compatibility(False, f"Daemon version {daemon_version[:64]!r} is not a version.")
    low, high = f"{panel[0]}.{max(panel[1] - 1, 0)}", f"{panel[0]}.{panel[1] + 1}"
    if daemon[0] != panel[0] or abs(daemon[1] - panel[1]) > 1:
        return Compatibility(
            False,
            f"Daemon {daemon_version} does not work with panel {panel_version}: "
            f"this panel accepts daemons {low}.x to {high}.x. Upgrade the older side.",
        )
    if daemon[:2] != panel[:2]:
        return Compatibility(
            True, f"Daemon {daemon_version} is one minor version from panel {panel_version}."
        )
    return Compatibility(True, f"Daemon {daemon_version} matches panel {panel_version}.")
