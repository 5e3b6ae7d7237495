"""Subusers."""
