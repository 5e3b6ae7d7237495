"""Errors of the runtime layer; the daemon adapts them, callers never see aiodocker or OSError.

ContainerRuntimeError
├── RuntimeUnavailableError   the engine cannot be reached (Docker down, no socket)
├── ContainerNotFoundError    no managed container for that server id
├── ContainerConflictError    it exists already, or is not in a state allowing the operation
├── InvalidSpecError          a spec or argument this runtime cannot honour
└── ImagePullError            an image could not be pulled (the engine's reason, readable)
"""

from __future__ import annotations

__all__ = [
    "ContainerConflictError",
    "ContainerNotFoundError",
    "ContainerRuntimeError",
    "ImagePullError",
    "InvalidSpecError",
    "RuntimeUnavailableError",
]


class ContainerRuntimeError(Exception):
    """Base class of runtime errors."""


class RuntimeUnavailableError(ContainerRuntimeError):
    """The container engine cannot be reached."""


class ContainerNotFoundError(ContainerRuntimeError):
    """No managed container exists for the server id."""


class ContainerConflictError(ContainerRuntimeError):
    """The container exists already, or its state does not allow the operation."""


class InvalidSpecError(ContainerRuntimeError, ValueError):
    """A spec or argument (signal name, tail) is invalid or cannot be honoured here."""


class ImagePullError(ContainerRuntimeError):
    """An image could not be pulled (unknown image, no registry access, bad credentials)."""
