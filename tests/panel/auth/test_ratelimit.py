"""Rate limits: per address and per account, never global; 429 with Retry-After."""

from __future__ import annotations

import pytest
from limits.aio.storage import MemoryStorage

from stellarstack.panel.auth.ratelimit import DEFAULT_POLICIES, RateLimiter
from stellarstack.panel.errors import RateLimited
from stellarstack.settings import PanelSettings
from tests.panel.auth.conftest import PASSWORD, AccountPanel

WRONG = {"email": "ada@example.test", "password": "wrong password"}


async def test_a_login_flood_from_one_address_leaves_everyone_else_signing_in(
    account_panel: AccountPanel,
) -> None:
    await account_panel.add_user("ada@example.test")
    await account_panel.add_user("bob@example.test")
    async with account_panel.client(ip="203.0.113.66") as attacker:
        statuses = [
            (await attacker.post("/api/v1/auth/sign-in", json=WRONG)).status_code for _ in range(12)
        ]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        blocked = await attacker.post("/api/v1/auth/sign-in", json=WRONG)
        assert int(blocked.headers["retry-after"]) >= 1
        assert blocked.json()["error"]["status"] == 429
    for ip, email in (("198.51.100.7", "ada@example.test"), ("198.51.100.8", "bob@example.test")):
        async with account_panel.client(ip=ip) as person:
            response = await person.post(
                "/api/v1/auth/sign-in", json={"email": email, "password": PASSWORD}
            )
            assert response.status_code == 200, (email, response.text)


async def test_one_address_spraying_many_accounts_hits_its_own_limit(
    account_panel: AccountPanel,
) -> None:
    async with account_panel.client(ip="203.0.113.9") as attacker:
        statuses = [
            (
                await attacker.post(
                    "/api/v1/auth/sign-in", json={"email": f"u{i}@example.test", "password": "x"}
                )
            ).status_code
            for i in range(31)
        ]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429


async def test_forgot_password_is_limited_per_address_and_account(
    account_panel: AccountPanel,
) -> None:
    async with account_panel.client(ip="203.0.113.10") as client:
        body = {"email": "ada@example.test"}
        statuses = [
            (await client.post("/api/v1/auth/forgot-password", json=body)).status_code
            for _ in range(4)
        ]
    assert statuses == [202, 202, 202, 429]


async def test_api_requests_are_limited_per_user() -> None:
    limiter = RateLimiter(MemoryStorage(), {}, api_client="3/minute", api_admin="1/minute")
    for _ in range(3):
        await limiter.hit("api.client", "user:a")
    with pytest.raises(RateLimited) as caught:
        await limiter.hit("api.client", "user:a")
    assert caught.value.headers["Retry-After"]
    await limiter.hit("api.client", "user:b")  # another user's bucket is untouched


async def test_the_api_limit_answers_429_with_retry_after(account_panel: AccountPanel) -> None:
    account_panel.app.state.rate_limiter = RateLimiter(
        MemoryStorage(), DEFAULT_POLICIES, api_client="2/minute"
    )
    async with account_panel.client(ip="192.0.2.1") as client:
        codes = [(await client.get("/api/v1/auth/session")).status_code for _ in range(3)]
        last = await client.get("/api/v1/auth/session")
    assert codes == [401, 401, 429]
    assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
    async with account_panel.client(ip="192.0.2.2") as other:
        assert (await other.get("/api/v1/auth/session")).status_code == 401


def test_a_typo_in_a_configured_rate_fails_at_start() -> None:
    settings = PanelSettings(rate_limits={"sign_in.ip": "ten per fortnight"})
    with pytest.raises(ValueError, match="invalid rate limit"):
        RateLimiter.from_settings(settings)


@pytest.mark.redis
async def test_redis_storage_shares_counts_between_limiters(redis_url: str) -> None:
    settings = PanelSettings(redis_url=redis_url, rate_limits={"reset.ip": "2/minute"})
    first, second = RateLimiter.from_settings(settings), RateLimiter.from_settings(settings)
    await first.hit("reset.ip", "203.0.113.1")
    await second.hit("reset.ip", "203.0.113.1")
    with pytest.raises(RateLimited):
        await first.hit("reset.ip", "203.0.113.1")
    await second.hit("reset.ip", "203.0.113.2")


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(
    account_panel: AccountPanel,
) -> None:
    async with account_panel.client(ip="203.0.113.20") as attacker:
        for i in range(10):
            await attacker.post(
                "/api/v1/auth/sign-in", json=WRONG, headers={"x-forwarded-for": f"10.0.0.{i}"}
            )
        response = await attacker.post(
            "/api/v1/auth/sign-in", json=WRONG, headers={"x-forwarded-for": "10.9.9.9"}
        )
    assert response.status_code == 429


async def test_successful_sign_ins_never_lock_the_owner_out(account_panel: AccountPanel) -> None:
    await account_panel.add_user("ada@example.test")
    async with account_panel.client(ip="198.51.100.30") as owner:
        body = {"email": "ada@example.test", "password": PASSWORD}
        statuses = [
            (await owner.post("/api/v1/auth/sign-in", json=body)).status_code for _ in range(12)
        ]
    assert statuses == [200] * 12
