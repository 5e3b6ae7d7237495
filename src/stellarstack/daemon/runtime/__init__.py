"""Run game servers: the Runtime seam and its Docker and local-process implementations.

A library-like layer: it knows containers and processes, not panels, commands or brokers,
and raises only the errors of `runtime.errors`.
"""

from stellarstack.daemon.runtime.base import (
    ContainerSpec,
    ContainerState,
    ContainerStatus,
    OutputLine,
    OutputStream,
    PortBinding,
    PullProgress,
    ResourceStats,
    Runtime,
    StreamName,
)
from stellarstack.daemon.runtime.detect import RuntimeMode, detect_runtime
from stellarstack.daemon.runtime.docker import DockerRuntime
from stellarstack.daemon.runtime.errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ImagePullError,
    InvalidSpecError,
    RuntimeUnavailableError,
)
from stellarstack.daemon.runtime.process import ProcessRuntime

__all__ = [
    "ContainerConflictError",
    "ContainerNotFoundError",
    "ContainerRuntimeError",
    "ContainerSpec",
    "ContainerState",
    "ContainerStatus",
    "DockerRuntime",
    "ImagePullError",
    "InvalidSpecError",
    "OutputLine",
    "OutputStream",
    "PortBinding",
    "ProcessRuntime",
    "PullProgress",
    "ResourceStats",
    "Runtime",
    "RuntimeMode",
    "RuntimeUnavailableError",
    "StreamName",
    "detect_runtime",
]
