"""Stream ids (hostile spellings included) and choosing a broker from a URL."""

from __future__ import annotations

import pytest

from stellarstack.broker import (
    InvalidStreamId,
    MemoryBroker,
    RedisBroker,
    create_broker,
    format_stream_id,
    parse_stream_id,
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("0", (0, 0)),
        ("0-0", (0, 0)),
        ("1700000000000-5", (1700000000000, 5)),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
    ],
)
def test_entry_ids_parse_into_comparable_pairs(text: str, key: tuple[int, int]) -> None:
    assert parse_stream_id(text) == key


def test_ids_compare_numerically_not_as_text() -> None:
    assert parse_stream_id("10-0") > parse_stream_id("9-99")
    assert format_stream_id(parse_stream_id("1700000000000-12")) == "1700000000000-12"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-",
        "-1",
        "1-",
        "1-2-3",
        " 1-0",
        "1-0\n",
        "+1",
        "0x10",
        "1e3",
        "1.5",
        "../../etc/passwd",
        "%2e%2e%2f",
        "\u0661\u0662\u0663",  # Arabic-Indic digits
        "18446744073709551616-0",
        "0-18446744073709551616",
        "1" * 21,
        "$",
        ">",
        "*",
    ],
)
def test_hostile_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidStreamId):
        parse_stream_id(bad)


def test_invalid_stream_id_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_stream_id("nope")


@pytest.mark.parametrize("url", [None, "", "memory://"])
async def test_no_url_means_the_in_process_broker(url: str | None) -> None:
    broker = create_broker(url)
    assert isinstance(broker, MemoryBroker)
    await broker.close()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/redis.sock"]
)
async def test_redis_urls_mean_redis(url: str) -> None:
    broker = create_broker(url, username="node-1", password="strk_node_x")
    assert isinstance(broker, RedisBroker)
    await broker.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "postgresql://db/x", "redis", "memory"])
def test_other_urls_are_refused_with_a_message(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker(url)
