"""Where a server lives on the node: its stored spec, its files and its install log.

Layout under the daemon's data directory::

    servers/<id>.json          the last `server.create` / `server.reinstall` spec (0600)
    servers/<id>/install.log   output of the last install run
    volumes/<id>/              the server's files (mounted into its container)

A server id is checked by the wire model (`check_identifier`) before it reaches here, and
checked again: no path is ever built from an id that could leave these folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from stellarstack.logs import get_logger
from stellarstack.protocol.errors import MalformedMessageError
from stellarstack.protocol.keys import check_identifier
from stellarstack.protocol.servers import ServerSpec

__all__ = ["SpecStore"]

log = get_logger(__name__)


class SpecStore:
    """Specs, server directories and install logs of one daemon, under its data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.specs_dir = data_dir / "servers"
        self.volumes_dir = data_dir / "volumes"

    def _id(self, server_id: str) -> str:
        return check_identifier(server_id, kind="server id")

    def spec_path(self, server_id: str) -> Path:
        """Where the server's spec is kept."""
        return self.specs_dir / f"{self._id(server_id)}.json"

    def volume_dir(self, server_id: str) -> Path:
        """The server's files (absolute: the runtime mounts it)."""
        return (self.volumes_dir / self._id(server_id)).absolute()

    def install_log(self, server_id: str) -> Path:
        """The log of the server's last install run."""
        return self.specs_dir / self._id(server_id) / "install.log"

    def save(self, spec: ServerSpec) -> None:
        """Write the spec atomically, readable by the daemon's user only."""
        self.specs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.spec_path(spec.server_id)
        partial = path.with_suffix(".json.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(spec.model_dump_json(by_alias=True))
        os.replace(partial, path)

    def load(self, server_id: str) -> ServerSpec | None:
        """The stored spec, or None when the server has none (or it cannot be read)."""
        path = self.spec_path(server_id)
        try:
            return ServerSpec.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, MalformedMessageError) as exc:
            log.warning("servers.spec_unreadable", server_id=server_id, error=str(exc))
            return None

    def all(self) -> list[ServerSpec]:
        """Every readable stored spec."""
        if not self.specs_dir.is_dir():
            return []
        specs = (self.load(path.stem) for path in sorted(self.specs_dir.glob("*.json")))
        return [spec for spec in specs if spec is not None]

    async def remove(
        self, server_id: str, *, keep_files: bool = False, keep_log: bool = False
    ) -> None:
        """Forget the spec, the install log (unless `keep_log`) and the files (unless kept)."""
        with contextlib.suppress(FileNotFoundError):
            self.spec_path(server_id).unlink()
        if not keep_log:
            await asyncio.to_thread(shutil.rmtree, self.specs_dir / self._id(server_id), True)
        if not keep_files:
            await asyncio.to_thread(shutil.rmtree, self.volume_dir(server_id), True)
