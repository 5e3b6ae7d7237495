"""Pull images through the Docker Engine: reference checks, progress across layers, readable errors.

The engine streams one JSON message per layer event (``Downloading``, ``Extracting``,
``Pull complete``…); `PullTracker` folds them into one 0-1 fraction (download and
extraction weigh half each) and a message a person can read. Engine errors become
`ImagePullError` with a short reason first ("image not found", "registry unreachable").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiodocker
import aiohttp

from stellarstack.daemon.runtime.base import PullProgress
from stellarstack.daemon.runtime.errors import ImagePullError
from stellarstack.logs import get_logger

__all__ = ["PullTracker", "check_image_reference", "pull_image", "pull_reason", "split_reference"]

log = get_logger(__name__)

# Docker's reference grammar, simplified: [registry[:port]/]path[:tag][@digest], lower-case path.
_HOST_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:(?P<registry>localhost(?::[0-9]{{1,5}})?|{_HOST_PART}(?:[.]{_HOST_PART})+"
    rf"(?::[0-9]{{1,5}})?|{_HOST_PART}:[0-9]{{1,5}})/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}))?"
    rf"(?:@(?P<digest>[a-z0-9]+:[a-f0-9]{{32,}}))?"
)
_MAX_REFERENCE = 512

_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Docker Engine unreachable", ("cannot connect to docker engine",)),
    (
        "image not found",
        ("not found", "manifest unknown", "pull access denied", "does not exist"),
    ),
    ("registry authentication failed", ("unauthorized", "authentication required", "denied")),
    (
        "registry unreachable",
        (
            "dial tcp",
            "no such host",
            "connection refused",
            "i/o timeout",
            "network is unreachable",
            "timeout",
            "tls",
            "temporary failure",
        ),
    ),
    ("no space left on the node", ("no space left",)),
)


def check_image_reference(image: str) -> None:
    """Raise ImagePullError unless `image` is a well-formed Docker image reference."""
    match = _REFERENCE.fullmatch(image) if 0 < len(image) <= _MAX_REFERENCE else None
    if match is None:
        shown = image[:80] + ("…" if len(image) > 80 else "")
        raise ImagePullError(f"invalid image reference {shown!r}")


def split_reference(image: str) -> tuple[str, str]:
    """(repository, tag or digest) of a checked reference; the tag defaults to `latest`."""
    match = _REFERENCE.fullmatch(image)
    assert match is not None
    repository = f"{match['registry']}/{match['path']}" if match["registry"] else match["path"]
    return repository, match["digest"] or match["tag"] or "latest"


def pull_reason(engine_message: str) -> str:
    """A short, readable reason for an engine's pull error message."""
    lowered = engine_message.lower()
    for reason, needles in _REASONS:
        if any(needle in lowered for needle in needles):
            return reason
    return "the engine refused the pull"


def _pull_error(image: str, engine_message: str) -> ImagePullError:
    message = " ".join(engine_message.split())[:300]
    return ImagePullError(f"cannot pull {image}: {pull_reason(message)} ({message})")


@dataclass
class _Layer:
    total: int = 0
    downloaded: int = 0
    extracted: int = 0
    done: bool = False


@dataclass
class PullTracker:
    """Fold the engine's per-layer pull messages into a fraction (0-1) and a readable message."""

    image: str
    layers: dict[str, _Layer] = field(default_factory=dict)
    fraction: float = 0.0

    def feed(self, message: Mapping[str, Any]) -> tuple[float, str] | None:
        """Take one engine message; return (fraction, text) when there is progress to report."""
        error = message.get("error") or (message.get("errorDetail") or {}).get("message")
        if error:
            raise _pull_error(self.image, str(error))
        status = str(message.get("status") or "")
        layer_id = message.get("id")
        if not layer_id or layer_id == self.image.rsplit(":", 1)[-1] or " " in str(layer_id):
            return None  # image-level lines ("Pulling from …", "Digest: …")
        layer = self.layers.setdefault(str(layer_id), _Layer())
        detail = message.get("progressDetail") or {}
        current, total = int(detail.get("current") or 0), int(detail.get("total") or 0)
        if status == "Downloading":
            layer.total = max(layer.total, total)
            layer.downloaded = current
        elif status == "Extracting":
            layer.total = max(layer.total, total)
            layer.downloaded = layer.total
            layer.extracted = current
        elif status in ("Pull complete", "Already exists", "Download complete"):
            layer.downloaded = layer.total
            if status != "Download complete":
                layer.extracted, layer.done = layer.total, True
        else:
            return None
        fraction = self._fraction()
        if fraction - self.fraction < 0.01 and status in ("Downloading", "Extracting"):
            return None
        self.fraction = max(self.fraction, fraction)
        return self.fraction, self._describe(status)

    def _fraction(self) -> float:
        layers = list(self.layers.values())
        if not layers:
            return 0.0
        total = sum(layer.total for layer in layers)
        if total == 0:
            return sum(layer.done for layer in layers) / len(layers)
        moved = sum(
            layer.total * 2 if layer.done else layer.downloaded + layer.extracted
            for layer in layers
        )
        return min(moved / (2 * total), 1.0)

    def _describe(self, status: str) -> str:
        total = sum(layer.total for layer in self.layers.values())
        done = sum(layer.downloaded for layer in self.layers.values())
        finished = sum(layer.done for layer in self.layers.values())
        if status in ("Downloading", "Download complete") and total:
            return f"Downloading {self.image}: {_size(done)} of {_size(total)}"
        return f"Extracting {self.image}: {finished} of {len(self.layers)} layers done"


def _size(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


async def pull_image(
    docker: aiodocker.Docker,
    image: str,
    on_progress: PullProgress | None,
    *,
    stall_timeout: float,
) -> None:
    """Pull `image` unless present; ImagePullError when it fails or stalls `stall_timeout` s."""
    check_image_reference(image)
    try:
        await docker.images.inspect(image)
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise _pull_error(image, str(exc.message)) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise ImagePullError(f"cannot pull {image}: Docker Engine unreachable ({exc})") from exc
    else:
        if on_progress is not None:
            await on_progress(1.0, f"{image} is present on this node")
        return
    repository, tag = split_reference(image)
    tracker = PullTracker(image)
    log.info("runtime.image_pull_started", image=image)
    if on_progress is not None:
        await on_progress(0.0, f"Pulling {image}")
    try:
        messages = docker.images.pull(repository, tag=tag, stream=True, timeout=None)
        iterator = aiter(messages)
        while True:
            try:
                async with asyncio.timeout(stall_timeout):
                    message = await anext(iterator)
            except StopAsyncIteration:
                break
            report = tracker.feed(message)
            if report is not None and on_progress is not None:
                await on_progress(*report)
    except TimeoutError as exc:
        raise ImagePullError(
            f"cannot pull {image}: registry unreachable (no progress for {stall_timeout:g} s)"
        ) from exc
    except aiodocker.DockerError as exc:
        raise _pull_error(image, str(exc.message)) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ImagePullError(f"cannot pull {image}: Docker Engine unreachable ({exc})") from exc
    log.info("runtime.image_pulled", image=image, layers=len(tracker.layers))
    if on_progress is not None:
        await on_progress(1.0, f"Pulled {image}")
