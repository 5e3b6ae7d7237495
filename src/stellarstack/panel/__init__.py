"""The panel: the control plane web app, its data model and its domain services."""
