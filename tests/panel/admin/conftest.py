"""Admin test fixtures: the shared cast of callers (see world.py)."""

from tests.panel.admin.world import world

__all__ = ["world"]
