"""Errors of the daemon itself (the runtime layer has its own, in `runtime.errors`).

DaemonError
├── DaemonStartError      the daemon cannot start (runtime demanded but absent, state unreadable)
└── CommandFailedError    a command cannot be carried out; its message is reported to the panel
"""

from __future__ import annotations

__all__ = ["CommandFailedError", "DaemonError", "DaemonStartError"]


class DaemonError(Exception):
    """Base class of daemon errors."""


class DaemonStartError(DaemonError):
    """The daemon cannot start; the message says why and what to change."""


class CommandFailedError(DaemonError):
    """A command handler could not do what was asked; the message goes to the panel as is."""
