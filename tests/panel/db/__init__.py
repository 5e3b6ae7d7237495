"""Tests of the data model, sessions and migrations, on SQLite and PostgreSQL."""
