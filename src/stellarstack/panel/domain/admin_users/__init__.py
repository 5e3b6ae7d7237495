"""Admin users."""
