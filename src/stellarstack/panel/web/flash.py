"""Flash messages: a note for the next page (e.g. "Signed out."), carried in a signed cookie.

The cookie lives for a minute and is cleared by the page that shows it. It is signed so
another site cannot plant text in the panel's own voice, and its text is escaped like any
other user-visible string when rendered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Literal, get_args

from starlette.requests import Request
from starlette.responses import Response

from stellarstack.panel.web.urls import cookie_secure

__all__ = ["FLASH_COOKIE", "Flash", "FlashLevel", "clear_flashes", "read_flashes", "set_flashes"]

FLASH_COOKIE = "stellar_flash"
FLASH_MAX_AGE = 60
MAX_FLASHES = 5
MAX_MESSAGE = 500

FlashLevel = Literal["info", "success", "warning", "error"]
_LEVELS: frozenset[str] = frozenset(get_args(FlashLevel))
# Used when the panel has no secret key configured: flashes then only survive within one
# process, which is all a one-minute note needs.
_PROCESS_KEY = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Flash:
    """One message and how it should look."""

    message: str
    level: FlashLevel = "info"


def _key(request: Request) -> bytes:
    settings = getattr(request.app.state, "settings", None)
    secret = getattr(settings, "secret_key", None)
    if isinstance(secret, str) and secret:
        return hashlib.sha256(b"stellarstack.flash:" + secret.encode()).digest()
    return _PROCESS_KEY


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(request: Request, payload: bytes) -> str:
    return _b64(hmac.new(_key(request), payload, hashlib.sha256).digest()[:18])


def set_flashes(response: Response, request: Request, *flashes: Flash) -> None:
    """Attach messages for the next page this browser loads."""
    items = [
        {"m": f.message[:MAX_MESSAGE], "l": f.level if f.level in _LEVELS else "info"}
        for f in flashes[:MAX_FLASHES]
    ]
    payload = json.dumps({"t": int(time.time()), "f": items}, separators=(",", ":")).encode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{_b64(payload)}.{_sign(request, payload)}",
        max_age=FLASH_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )


def _parse(items: object) -> list[Flash]:
    if not isinstance(items, list):
        return []
    flashes: list[Flash] = []
    for item in items[:MAX_FLASHES]:
        if not isinstance(item, dict):
            continue
        message, level = item.get("m"), item.get("l")
        if isinstance(message, str) and message and level in _LEVELS:
            flashes.append(Flash(message[:MAX_MESSAGE], level))
    return flashes


def read_flashes(request: Request) -> list[Flash]:
    """The messages waiting for this request; anything forged, stale or malformed is dropped."""
    raw = request.cookies.get(FLASH_COOKIE, "")
    encoded, _, signature = raw.partition(".")
    if not encoded or not signature or len(raw) > 4096:
        return []
    try:
        payload = _unb64(encoded)
        if not hmac.compare_digest(signature, _sign(request, payload)):
            return []
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(data, dict):
        return []
    stamp = data.get("t")
    if not isinstance(stamp, int) or not 0 <= time.time() - stamp <= FLASH_MAX_AGE * 2:
        return []
    return _parse(data.get("f"))


def clear_flashes(response: Response) -> None:
    """Remove the flash cookie once its messages were shown."""
    response.delete_cookie(FLASH_COOKIE, path="/")
