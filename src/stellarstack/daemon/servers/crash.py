"""Crash bookkeeping: why a server exited, and whether (and when) to restart it.

A crash is an exit the daemon did not cause. The first crash restarts after a backoff
(1 s, 2 s, 4 s… capped by the policy's `max_backoff`); a crash within `window` seconds of
the previous one is a crash loop: no restart, the server stays CRASHED and an alert goes
to the panel. A start asked for by a person forgets the count.
"""

from __future__ import annotations

from dataclasses import dataclass

from stellarstack.daemon.runtime import ContainerState
from stellarstack.protocol.servers import CrashPolicy

__all__ = ["CrashDecision", "CrashRecord", "exit_reason"]


def exit_reason(state: ContainerState) -> str:
    """A readable reason for an exit: "out of memory" or "exit code N"."""
    if state.oom_killed:
        return "out of memory"
    if state.exit_code is None:
        return "the process ended"
    if state.exit_code > 128:
        return f"exit code {state.exit_code} (signal {state.exit_code - 128})"
    return f"exit code {state.exit_code}"


@dataclass(frozen=True, slots=True)
class CrashDecision:
    """What to do after a crash: restart after `delay` seconds, or hold (a crash loop)."""

    restart: bool
    delay: float
    count: int
    loop: bool


@dataclass(slots=True)
class CrashRecord:
    """Crashes of one server since its last manual start."""

    count: int = 0
    last_at: float | None = None

    def reset(self) -> None:
        """Forget earlier crashes (a person started the server)."""
        self.count, self.last_at = 0, None

    def record(self, policy: CrashPolicy, at: float) -> CrashDecision:
        """Count a crash at time `at` and decide what follows it."""
        loop = self.last_at is not None and at - self.last_at < policy.window
        self.count += 1
        self.last_at = at
        delay = min(float(2 ** min(self.count - 1, 30)), policy.max_backoff)
        return CrashDecision(
            restart=policy.restart and not loop, delay=delay, count=self.count, loop=loop
        )
