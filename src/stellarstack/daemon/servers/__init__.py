"""The daemon's game servers: install, lifecycle, crash handling, ready checks and stats."""
