"""Leases: run once-only work (health sweeps, schedules) on exactly one panel replica.

A lease is a key holding the holder's random token with an expiry. Acquire is
`SET key token NX PX ttl`; renewal and release compare the token first (Lua), so a replica
that stalled past its expiry cannot extend or delete a lease someone else now holds. Each
acquisition also takes a fencing number (`INCR`), strictly larger than any earlier holder's,
for work that must reject writes from a stale holder.

`LocalLeases` is the in-process equivalent for the embedded default (one process, no Redis).

Usage::

    leases = lease_store(settings.redis_url)
    runner = LeasedLoop(leases.lease("health-sweep", ttl=15), sweep_once, period=5)
    task = asyncio.create_task(runner.run())
    ...
    await runner.stop()
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stellarstack.logs import get_logger

__all__ = [
    "Lease",
    "LeaseStore",
    "LeasedLoop",
    "LocalLeases",
    "RedisLeases",
    "lease_store",
]

log = get_logger(__name__)

KEY_PREFIX = "stellar:leases:"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseStore(abc.ABC):
    """Where leases live: Redis across replicas, or this process."""

    @abc.abstractmethod
    async def try_acquire(self, name: str, token: str, ttl_ms: int) -> int | None:
        """Take the lease if free; return the fencing number, or None when someone holds it."""

    @abc.abstractmethod
    async def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend the lease if `token` still holds it."""

    @abc.abstractmethod
    async def release(self, name: str, token: str) -> None:
        """Give the lease up if `token` holds it."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    def lease(self, name: str, *, ttl: float) -> Lease:
        """A lease handle on `name` with a fresh holder token."""
        return Lease(self, name, ttl)


class RedisLeases(LeaseStore):
    """Leases in Redis: SET NX PX, token-checked renew and release, INCR fencing."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self._redis: Redis = Redis.from_url(
            url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def try_acquire(self, name: str, token: str, ttl_ms: int) -> int | None:
        """SET NX PX, then INCR the fencing counter."""
        key = KEY_PREFIX + name
        if not await self._redis.set(key, token, nx=True, px=ttl_ms):
            return None
        return int(await self._redis.incr(key + ":fence"))

    async def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        """PEXPIRE only while the key still holds our token."""
        renewed = await self._redis.eval(_RENEW, 1, KEY_PREFIX + name, token, str(ttl_ms))
        return bool(renewed)

    async def release(self, name: str, token: str) -> None:
        """DEL only while the key still holds our token."""
        await self._redis.eval(_RELEASE, 1, KEY_PREFIX + name, token)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


@dataclass
class _Held:
    token: str
    expires: float


class LocalLeases(LeaseStore):
    """Leases inside one process (the embedded default): same contract, no Redis."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        self._fences: dict[str, int] = {}

    def _current(self, name: str) -> _Held | None:
        held = self._held.get(name)
        if held is not None and held.expires <= time.monotonic():
            del self._held[name]
            return None
        return held

    async def try_acquire(self, name: str, token: str, ttl_ms: int) -> int | None:
        """Take the lease if nobody holds an unexpired one."""
        if self._current(name) is not None:
            return None
        self._held[name] = _Held(token, time.monotonic() + ttl_ms / 1000)
        self._fences[name] = self._fences.get(name, 0) + 1
        return self._fences[name]

    async def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend while still held by `token`."""
        held = self._current(name)
        if held is None or held.token != token:
            return False
        held.expires = time.monotonic() + ttl_ms / 1000
        return True

    async def release(self, name: str, token: str) -> None:
        """Drop the lease if `token` holds it."""
        held = self._current(name)
        if held is not None and held.token == token:
            del self._held[name]

    async def close(self) -> None:
        """Nothing to release."""


class Lease:
    """One replica's handle on a named lease; `held` is true only before its local expiry."""

    def __init__(self, store: LeaseStore, name: str, ttl: float) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self.fence: int | None = None
        self._valid_until = 0.0

    @property
    def ttl_ms(self) -> int:
        """The lease time in milliseconds."""
        return max(1, int(self.ttl * 1000))

    @property
    def held(self) -> bool:
        """True while this holder owns the lease (judged on the local clock, conservatively)."""
        return self.fence is not None and time.monotonic() < self._valid_until

    async def refresh(self) -> bool:
        """Acquire the lease, or renew it if held; return whether this replica holds it now."""
        started = time.monotonic()
        if self.fence is not None and await self.store.renew(self.name, self.token, self.ttl_ms):
            self._valid_until = started + self.ttl
            return True
        if self.fence is not None:
            log.warning("lease.lost", lease=self.name, fence=self.fence)
            self.fence = None
        fence = await self.store.try_acquire(self.name, self.token, self.ttl_ms)
        if fence is None:
            return False
        self.fence, self._valid_until = fence, started + self.ttl
        log.info("lease.acquired", lease=self.name, fence=fence)
        return True

    async def release(self) -> None:
        """Give the lease up so another replica can take it at once."""
        if self.fence is not None:
            self.fence = None
            await self.store.release(self.name, self.token)


Work = Callable[[], Awaitable[object]]


class LeasedLoop:
    """Run `work` every `period` seconds while this replica holds `lease`; others wait."""

    def __init__(self, lease: Lease, work: Work, *, period: float) -> None:
        self.lease = lease
        self.work = work
        self.period = period
        self.runs = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Refresh the lease and run the work until stop(); errors are logged, not fatal."""
        refresh_every = self.lease.ttl / 3
        next_refresh = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_refresh or not self.lease.held:
                try:
                    await self.lease.refresh()
                except (RedisError, OSError) as exc:
                    log.warning("lease.unavailable", lease=self.lease.name, error=str(exc))
                next_refresh = now + refresh_every
            if self.lease.held:
                await self._run_work()
            await self._sleep(min(self.period, refresh_every))
        with contextlib.suppress(RedisError, OSError):
            await self.lease.release()

    async def _run_work(self) -> None:
        try:
            await self.work()
            self.runs += 1
        except Exception:
            log.exception("lease.work_failed", lease=self.lease.name)

    async def stop(self) -> None:
        """Ask run() to return (it releases the lease on the way out)."""
        self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


def lease_store(redis_url: str | None) -> LeaseStore:
    """Redis leases when the panel runs on Redis, in-process leases otherwise."""
    if redis_url and redis_url != "memory://":
        return RedisLeases(redis_url)
    return LocalLeases()
