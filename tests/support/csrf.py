"""Make an httpx client behave like the panel's pages: echo the CSRF cookie as a header."""

from __future__ import annotations

import httpx

from stellarstack.panel.auth.csrf import CSRF_COOKIE

__all__ = ["speak_csrf"]

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def speak_csrf(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Repeat the `stellar_csrf` cookie in `X-CSRF-Token` on unsafe requests (as app.js does)."""

    async def add_token(request: httpx.Request) -> None:
        token = client.cookies.get(CSRF_COOKIE)
        if request.method in UNSAFE and token:
            request.headers["x-csrf-token"] = token

    client.event_hooks["request"] = [*client.event_hooks.get("request", []), add_token]
    return client
