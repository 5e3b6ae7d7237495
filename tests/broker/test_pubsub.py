"""Contract: pub/sub fan-out, channel isolation, unsubscribe on close; both brokers."""

from __future__ import annotations

import asyncio

import pytest

from stellarstack.broker import Broker, BrokerUnavailable, PubSubMessage, Subscription
from tests.broker.polling import wait_until

LIVE = "stellar:nodes:n1:live"
OTHER = "stellar:nodes:n2:live"


async def next_message(sub: Subscription, timeout: float = 5.0) -> PubSubMessage:
    """The next message, failing the test rather than hanging."""
    return await asyncio.wait_for(anext(sub), timeout)


async def test_publish_reaches_every_subscriber_of_the_channel(broker: Broker) -> None:
    async with broker.subscribe(LIVE) as a, broker.subscribe(LIVE, OTHER) as b:
        assert await broker.publish(LIVE, "status=running") == 2
        expected = PubSubMessage(LIVE, "status=running")
        assert await next_message(a) == expected
        assert await next_message(b) == expected


async def test_subscriber_receives_only_its_channels(broker: Broker) -> None:
    async with broker.subscribe(LIVE) as sub:
        assert await broker.publish(OTHER, "not for you") == 0
        await broker.publish(LIVE, "first")
        await broker.publish(LIVE, "<b>second</b>")
        assert [(await next_message(sub)).data for _ in range(2)] == ["first", "<b>second</b>"]


async def test_publish_without_subscribers_reaches_nobody(broker: Broker) -> None:
    assert await broker.publish(LIVE, "lost") == 0


async def test_closing_a_subscription_unsubscribes(broker: Broker) -> None:
    sub = broker.subscribe(LIVE)
    await sub.start()
    assert await broker.publish(LIVE, "one") == 1
    assert (await next_message(sub)).data == "one"
    await sub.aclose()
    assert await broker.publish(LIVE, "two") == 0
    with pytest.raises(StopAsyncIteration):
        await next_message(sub)


async def test_leaving_the_context_unsubscribes(broker: Broker) -> None:
    async with broker.subscribe(LIVE, OTHER):
        assert await broker.publish(OTHER, "x") == 1
    assert await broker.publish(OTHER, "x") == 0


async def test_closing_ends_a_blocked_reader(broker: Broker) -> None:
    sub = broker.subscribe(LIVE)
    await sub.start()
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0.05)
    await sub.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 5)


async def test_closing_the_broker_ends_subscriptions(broker: Broker) -> None:
    sub = broker.subscribe(LIVE)
    await sub.start()
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0.05)
    await broker.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(reader, 5)
    with pytest.raises(BrokerUnavailable):
        await broker.subscribe(OTHER).start()


async def test_iterating_subscribes_lazily(broker: Broker) -> None:
    sub = broker.subscribe(LIVE)
    reader = asyncio.create_task(anext(sub))

    async def subscribed() -> bool:
        return await broker.publish(LIVE, "hello") == 1

    try:
        await wait_until(subscribed)
        assert (await asyncio.wait_for(reader, 5)).data == "hello"
    finally:
        await sub.aclose()
