"""A limiter whose Redis is down fails open: the API keeps answering, never with a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stellarstack.panel.auth.ratelimit import DEFAULT_POLICIES, RateLimiter
from stellarstack.panel.errors import RateLimited
from stellarstack.settings import PanelSettings
from tests.panel.auth.conftest import PASSWORD, AccountPanel
from tests.support.services import RedisServer, start_redis, stop_process

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this module's own, which the tests stop and restart."""
    server, reason = start_redis()
    if server is None:
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture
def running_redis(redis_server: RedisServer) -> RedisServer:
    """The module's Redis, started again if a previous test left it down."""
    if redis_server.proc.poll() is not None:
        redis_server.restart()
    return redis_server


def _limiter(url: str, **rates: str) -> RateLimiter:
    return RateLimiter.from_settings(
        PanelSettings(redis_url=url, rate_limits={**DEFAULT_POLICIES, **rates})
    )


async def test_a_stopped_redis_lets_requests_through_and_counts_the_misses(
    running_redis: RedisServer,
) -> None:
    limiter = _limiter(running_redis.url, **{"reset.ip": "2/minute"})
    await limiter.hit("reset.ip", "203.0.113.5")
    await limiter.hit("reset.ip", "203.0.113.5")
    with pytest.raises(RateLimited):
        await limiter.hit("reset.ip", "203.0.113.5")
    assert limiter.storage_failures == 0

    stop_process(running_redis.proc)
    for _ in range(3):
        await limiter.hit("reset.ip", "203.0.113.5")  # fails open: no 429, no error
    await limiter.check("reset.ip", "203.0.113.5")
    await limiter.clear("reset.ip", "203.0.113.5")
    assert limiter.storage_failures == 5


async def test_limits_apply_again_once_redis_is_back(running_redis: RedisServer) -> None:
    limiter = _limiter(running_redis.url, **{"reset.ip": "1/minute"})
    stop_process(running_redis.proc)
    await limiter.hit("reset.ip", "203.0.113.6")
    running_redis.restart()
    await limiter.hit("reset.ip", "203.0.113.6")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("reset.ip", "203.0.113.6")
    assert int(refused.value.headers["Retry-After"]) >= 1


async def test_the_api_answers_while_redis_is_down(
    running_redis: RedisServer, account_panel: AccountPanel
) -> None:
    await account_panel.add_user("ada@example.test")
    limiter = _limiter(running_redis.url)
    account_panel.app.state.rate_limiter = limiter
    stop_process(running_redis.proc)
    async with account_panel.client(ip="198.51.100.20") as client:
        anonymous = await client.get("/api/v1/auth/session")
        assert anonymous.status_code == 401, anonymous.text
        signed_in = await client.post(
            "/api/v1/auth/sign-in", json={"email": "ada@example.test", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        me = await client.get("/api/v1/users/me")
        assert me.status_code == 200, me.text
        wrong = await client.post(
            "/api/v1/auth/sign-in", json={"email": "ada@example.test", "password": "nope"}
        )
        assert wrong.status_code == 401, wrong.text
    assert limiter.storage_failures > 0
