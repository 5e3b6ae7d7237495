"""Rate limits on `limits`: named policies keyed per address and per account, never globally.

Each policy is a rate (`limits` notation, "10/minute") applied to one kind of key: a flood of
sign-ins from one address fills that address's bucket and nobody else's. Storage is in memory
on the embedded default and in Redis when `REDIS_URL` is set, so replicas share the counts.

A limiter whose storage is unreachable (Redis restarting) fails open: the request goes on, a
warning is logged (at most once every few seconds) and `storage_failures` counts the misses.
Taking the whole API down with Redis would be worse than a few seconds without limits.

Usage from another module (the 2FA challenge, for example)::

    limiter = rate_limiter(request)
    # before checking a code: count the address, check the account's buckets (429 if full)
    await limiter.attempt("two_factor", account=str(user.id), ip=ip, count_account=False)
    # after a wrong code: count it against the account
    await limiter.failed("two_factor", account=str(user.id), ip=ip)
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from limits import RateLimitItem, WindowStats, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import OptionalUser, client_ip
from stellarstack.panel.errors import RateLimited
from stellarstack.settings import PanelSettings

__all__ = [
    "DEFAULT_POLICIES",
    "ApiRateLimit",
    "LimiterDep",
    "RateLimiter",
    "enforce_api_limit",
    "rate_limiter",
]

log = get_logger(__name__)

_ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})
# A Redis that does not answer within this long counts as down (fail open), so a hung
# server costs each request a bounded delay instead of hanging it.
REDIS_TIMEOUT_SECONDS = 0.5
# Storage outages are logged at most this often: a flood of requests must not flood the log.
OUTAGE_LOG_INTERVAL_SECONDS = 10.0

_T = TypeVar("_T")

# Policy name -> rate. Each guarded action has three buckets (see `RateLimiter.attempt`):
#   <action>.ip          the caller's address, whatever account it tries;
#   <action>.account_ip  one account from one address: the tight limit on guessing;
#   <action>.account     one account from everywhere: slows a distributed attack. One address
#                        can put at most the account_ip rate into it, which stays below this
#                        rate, so a flood from one address never locks the owner out.
# The account key is the normalised email typed (unknown addresses are limited the same way)
# or, for two-factor, the user id.
DEFAULT_POLICIES: dict[str, str] = {
    "sign_in.ip": "30/minute",
    "sign_in.account_ip": "10/5minutes",
    "sign_in.account": "50/15minutes",
    "sign_up.ip": "10/hour",
    "reset.ip": "10/hour",
    "reset.account_ip": "3/hour",
    "reset.account": "10/hour",
    "verify.ip": "20/hour",
    "verify.account_ip": "3/hour",
    "verify.account": "10/hour",
    "two_factor.ip": "30/minute",
    "two_factor.account_ip": "10/5minutes",
    "two_factor.account": "50/15minutes",
}


class RateLimiter:
    """Named policies over one `limits` storage (memory or Redis)."""

    def __init__(
        self,
        storage: Storage,
        policies: dict[str, str],
        *,
        api_client: str = "720/minute",
        api_admin: str = "240/minute",
    ) -> None:
        """Parse every rate up front, so a typo in the settings fails at start, not at use."""
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self.storage_failures = 0
        self._last_outage_log = -math.inf
        try:
            self._policies: dict[str, RateLimitItem] = {
                name: parse(rate) for name, rate in policies.items()
            }
            self._policies["api.client"] = parse(api_client)
            self._policies["api.admin"] = parse(api_admin)
        except ValueError as exc:
            raise ValueError(f"invalid rate limit setting: {exc}") from exc

    @classmethod
    def from_settings(cls, settings: PanelSettings) -> RateLimiter:
        """The limiter the settings describe: Redis storage when REDIS_URL is set."""
        storage: Storage
        if settings.redis_url:
            uri = settings.redis_url.replace("redis://", "async+redis://", 1).replace(
                "rediss://", "async+rediss://", 1
            )
            storage = RedisStorage(
                uri,
                implementation="redispy",
                key_prefix="stellar:limits",
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        else:
            storage = MemoryStorage()
        return cls(
            storage,
            {**DEFAULT_POLICIES, **settings.rate_limits},
            api_client=settings.rate_limit_api_client,
            api_admin=settings.rate_limit_api_admin,
        )

    def policy(self, name: str) -> RateLimitItem:
        """The rate of a named policy."""
        try:
            return self._policies[name]
        except KeyError:
            raise KeyError(f"no rate limit policy named {name!r}") from None

    async def _guarded(self, name: str, call: Awaitable[_T], fallback: _T) -> _T:
        """Await a storage call; on a storage outage log, count and return `fallback`."""
        try:
            return await call
        except StorageError as exc:
            self.storage_failures += 1
            now = time.monotonic()
            if now - self._last_outage_log >= OUTAGE_LOG_INTERVAL_SECONDS:
                self._last_outage_log = now
                log.warning(
                    "ratelimit.storage_unavailable",
                    policy=name,
                    error=type(exc.storage_error).__name__,
                    failures=self.storage_failures,
                )
            return fallback

    async def hit(self, name: str, key: str) -> None:
        """Count one attempt against `key` under policy `name`; 429 when the bucket is full."""
        item = self.policy(name)
        if await self._guarded(name, self._strategy.hit(item, name, key[:256]), True):
            return
        retry_after = await self.retry_after(name, key)
        log.warning("ratelimit.exceeded", policy=name, retry_after=retry_after)
        raise RateLimited(retry_after, f"Too many attempts. Try again in {retry_after} s.")

    async def check(self, name: str, key: str) -> None:
        """Raise 429 when `key`'s bucket under policy `name` is full, without counting."""
        test = self._strategy.test(self.policy(name), name, key[:256])
        if not await self._guarded(name, test, True):
            retry_after = await self.retry_after(name, key)
            log.warning("ratelimit.exceeded", policy=name, retry_after=retry_after)
            raise RateLimited(retry_after, f"Too many attempts. Try again in {retry_after} s.")

    async def attempt(
        self, action: str, *, account: str, ip: str | None, count_account: bool = True
    ) -> None:
        """Count one attempt at `action` (sign_in, reset, verify, two_factor) on its buckets.

        The address bucket is hit first and a full bucket stops the count, so attempts that
        were refused for one address never reach the account's shared bucket. With
        `count_account=False` the account buckets are only checked here, and the caller
        counts failures with `failed` (a person who types the right password is never held
        back by their own successful sign-ins).
        """
        address = ip or "unknown"
        account = account.strip().lower()
        await self.hit(f"{action}.ip", address)
        if count_account:
            await self.failed(action, account=account, ip=ip)
            return
        await self.check(f"{action}.account_ip", f"{account}|{address}")
        await self.check(f"{action}.account", account)

    async def failed(self, action: str, *, account: str, ip: str | None) -> None:
        """Count a failed attempt against the account (from this address, and overall)."""
        address = ip or "unknown"
        account = account.strip().lower()
        await self.hit(f"{action}.account_ip", f"{account}|{address}")
        await self.hit(f"{action}.account", account)

    async def retry_after(self, name: str, key: str) -> int:
        """Seconds until `key` may try again under policy `name` (at least 1)."""
        stats = self._strategy.get_window_stats(self.policy(name), name, key[:256])
        reset_time = await self._guarded(name, _reset_time(stats), time.time() + 60)
        return max(1, math.ceil(reset_time - time.time()))

    async def clear(self, name: str, key: str) -> None:
        """Forget the attempts of `key` (a successful sign-in clears its account's bucket)."""
        await self._guarded(name, self._strategy.clear(self.policy(name), name, key[:256]), None)


async def _reset_time(stats: Awaitable[WindowStats]) -> float:
    """When a window's oldest counted attempt expires (epoch seconds)."""
    return (await stats).reset_time


def rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter, made from its settings on first use."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = RateLimiter.from_settings(request.app.state.settings)
        request.app.state.rate_limiter = limiter
    assert isinstance(limiter, RateLimiter)
    return limiter


def _api_caller(request: Request, user: User | None) -> tuple[str, str]:
    """Which bucket an API request fills: its key, its user, or (anonymous) its address."""
    key_id = getattr(request.state, "api_key_id", None)
    admin = user is not None and user.role in _ADMIN_ROLES
    policy = "api.admin" if admin else "api.client"
    if key_id is not None:
        return policy, f"key:{key_id}"
    if user is not None:
        return policy, f"user:{user.id}"
    return "api.client", f"ip:{client_ip(request) or 'unknown'}"


async def enforce_api_limit(request: Request, user: OptionalUser) -> None:
    """Count an `/api/v1` request against its caller's bucket; 429 with Retry-After when full."""
    policy, key = _api_caller(request, user)
    await rate_limiter(request).hit(policy, key)


ApiRateLimit = Depends(enforce_api_limit)
"""For `APIRouter(dependencies=[ApiRateLimit])`."""

LimiterDep = Annotated[RateLimiter, Depends(rate_limiter)]
