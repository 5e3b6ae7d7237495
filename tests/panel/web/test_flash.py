"""Flash messages survive one redirect, signed; forged, stale or garbled cookies show nothing."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from stellarstack.panel.web.flash import FLASH_COOKIE, Flash, read_flashes, set_flashes


def make_request(cookie: str | None = None, secret: str = "s3cret") -> Request:
    app = FastAPI()
    app.state.settings = type("S", (), {"secret_key": secret, "public_url": None})()
    headers = [(b"cookie", f"{FLASH_COOKIE}={cookie}".encode())] if cookie else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "query_string": b"",
            "headers": headers,
            "scheme": "http",
            "server": ("panel.test", 80),
            "app": app,
        }
    )


def cookie_of(response: Response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";")[0].split("=", 1)[1].strip('"')


def test_messages_round_trip_through_the_cookie() -> None:
    response = Response()
    set_flashes(response, make_request(), Flash("Saved.", "success"), Flash("<b>hi</b>"))
    assert "HttpOnly" in response.headers["set-cookie"]
    flashes = read_flashes(make_request(cookie_of(response)))
    assert flashes == [Flash("Saved.", "success"), Flash("<b>hi</b>", "info")]


def test_a_cookie_signed_with_another_key_is_ignored() -> None:
    response = Response()
    set_flashes(response, make_request(secret="other"), Flash("Pay at evil.example", "error"))
    assert read_flashes(make_request(cookie_of(response))) == []


def test_a_forged_payload_is_ignored() -> None:
    response = Response()
    set_flashes(response, make_request(), Flash("Saved."))
    _, signature = cookie_of(response).split(".")
    forged = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"t": int(time.time()), "f": [{"m": "Pay at evil.example", "l": "error"}]}
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    assert read_flashes(make_request(f"{forged}.{signature}")) == []


def test_a_stale_cookie_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    response = Response()
    set_flashes(response, make_request(), Flash("Old news."))
    cookie = cookie_of(response)
    monkeypatch.setattr(time, "time", lambda: 10_000_000_000.0)
    assert read_flashes(make_request(cookie)) == []


@pytest.mark.parametrize("cookie", ["garbage", "a.b", "!!!.???", "." * 10, "x" * 5000, "e30.AAAA"])
def test_garbled_cookies_show_nothing(cookie: str) -> None:
    assert read_flashes(make_request(cookie)) == []


def test_long_and_numerous_messages_are_capped() -> None:
    response = Response()
    set_flashes(response, make_request(), *[Flash("x" * 2000) for _ in range(20)])
    flashes = read_flashes(make_request(cookie_of(response)))
    assert len(flashes) == 5
    assert all(len(f.message) == 500 for f in flashes)
