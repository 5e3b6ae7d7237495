"""Ready checks: when a started server counts as RUNNING.

- `log`: a line of output matches the blueprint's pattern. Patterns come from blueprints
  (operator- or egg-provided), so each match is time-boxed (the `regex` module's timeout)
  and lines are cut to `MAX_LINE` characters; a pattern that does not compile is matched
  literally, as Pterodactyl's `done` strings mostly are.
- `port`: a TCP connect to the server's bound host port succeeds. UDP cannot be probed
  without speaking the game's protocol, so a udp port counts as ready while the process lives.
- `http`: a GET of `path` on that port answers 2xx.

These loops never give up by themselves: the caller bounds them with the probe's timeout and
races them against the server's exit.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import regex

from stellarstack.daemon.runtime import OutputStream
from stellarstack.logs import get_logger
from stellarstack.protocol.servers import PortMapping, ReadyProbe

__all__ = ["MATCH_TIMEOUT", "MAX_LINE", "LogMatcher", "probe_address", "wait_until_ready"]

log = get_logger(__name__)

MAX_LINE = 4096
"""Characters of a line a log pattern is matched against."""
MATCH_TIMEOUT = 0.05
"""Seconds one pattern match may take before the line counts as not matching."""
_POLL = 0.25


class LogMatcher:
    """A blueprint's ready pattern, compiled once and matched with a time box."""

    def __init__(self, pattern: str) -> None:
        try:
            self._pattern = regex.compile(pattern)
        except regex.error as exc:
            log.warning("servers.ready_pattern_literal", pattern=pattern[:200], error=str(exc))
            self._pattern = regex.compile(regex.escape(pattern))

    def matches(self, line: str) -> bool:
        """True when the pattern is found in `line` (False when the match runs too long)."""
        try:
            return self._pattern.search(line[:MAX_LINE], timeout=MATCH_TIMEOUT) is not None
        except TimeoutError:
            log.warning("servers.ready_pattern_slow", pattern=self._pattern.pattern[:200])
            return False


def probe_address(probe: ReadyProbe, ports: list[PortMapping]) -> PortMapping | None:
    """The allocation a port/http probe targets: its `port`, else the primary, else the first."""
    if probe.port is not None:
        return next((p for p in ports if p.port == probe.port), None) or PortMapping(
            ip="127.0.0.1", port=probe.port
        )
    return next((p for p in ports if p.primary), ports[0] if ports else None)


def _connect_host(ip: str) -> str:
    # A server bound on every interface is reached over loopback.
    if ip in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if ip == "::" else ip


async def _log_ready(output: OutputStream, matcher: LogMatcher) -> None:
    async for line in output:
        if matcher.matches(line.text):
            return
    await asyncio.Event().wait()  # output ended: the exit watcher decides what happens


async def _port_ready(host: str, port: int) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        await asyncio.sleep(_POLL)


async def _http_ready(host: str, port: int, path: str) -> None:
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{port}/{path.lstrip('/')}"
    async with httpx.AsyncClient(timeout=2.0, follow_redirects=False) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if response.is_success:
                    return
            await asyncio.sleep(_POLL)


async def wait_until_ready(
    probe: ReadyProbe, ports: list[PortMapping], output: OutputStream | None
) -> None:
    """Return once `probe` passes (unbounded: wrap it in the probe's timeout)."""
    if probe.type == "log":
        if output is None or not probe.pattern:
            return
        await _log_ready(output, LogMatcher(probe.pattern))
        return
    target = probe_address(probe, ports)
    if target is None or target.protocol == "udp":
        return  # nothing to connect to: alive is as ready as we can tell
    host = _connect_host(target.ip)
    if probe.type == "port":
        await _port_ready(host, target.port)
    else:
        await _http_ready(host, target.port, probe.path or "/")
