"""Open files inside a server's directory without ever leaving it.

Every component is opened relative to the one before it with O_NOFOLLOW (an openat-style
walk), so a symlink anywhere on the way — dangling, chained, or swapped in while we work —
fails the operation instead of being followed. Paths are relative, use `/`, and contain no
`..`; anything else is refused before the file system is touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from stellarstack.daemon.errors import CommandFailedError

__all__ = ["MAX_FILE_BYTES", "PathEscapeError", "read_inside", "split_relative", "write_inside"]

MAX_FILE_BYTES = 4 << 20
"""Largest config file the daemon reads into memory to edit."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a config name must not hang the daemon on open().
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class PathEscapeError(CommandFailedError):
    """A path would leave the server's directory (or is not a plain relative path)."""


def split_relative(path: str) -> list[str]:
    """The components of a relative path; PathEscapeError for anything that could escape."""
    if not path or "\0" in path or "\\" in path or path.startswith("/"):
        raise PathEscapeError(f"{path!r} must be a relative path inside the server directory")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise PathEscapeError(f"{path!r} must stay inside the server directory")
    return parts


@contextlib.contextmanager
def _parent_fd(root: Path, parts: list[str], *, create: bool) -> Iterator[int]:
    """A descriptor of the directory holding the last component, reached without symlinks."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PathEscapeError(f"{'/'.join(parts)!r} passes through a symlink") from exc
        raise
    finally:
        os.close(fd)


def read_inside(root: Path, path: str) -> str | None:
    """The text of `root/path`, or None if it does not exist; never follows a symlink."""
    parts = split_relative(path)
    try:
        with _parent_fd(root, parts, create=False) as parent:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathEscapeError(f"{path!r} is a symlink; it is not followed") from exc
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathEscapeError(f"{path!r} is not a regular file")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise CommandFailedError(f"{path!r} is larger than {MAX_FILE_BYTES >> 20} MiB")
    return data.decode("utf-8", errors="replace")


def write_inside(root: Path, path: str, text: str) -> None:
    """Replace `root/path` with `text` atomically, creating folders; never through a symlink."""
    parts = split_relative(path)
    with _parent_fd(root, parts, create=True) as parent:
        partial = f".{parts[-1]}.stellar-partial"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(partial, flags, 0o644, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathEscapeError(f"{path!r}: a symlink is in the way") from exc
            raise
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # rename() replaces a symlink itself, never its target.
        os.replace(partial, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
