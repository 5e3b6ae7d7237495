"""Audit log: who did what to which resource, from where, and how it ended (spec §12.4)."""
