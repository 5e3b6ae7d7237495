"""Blueprints: the games the panel can deploy, their versions, imports and syncs."""
