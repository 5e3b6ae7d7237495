"""Where pages send the browser: safe `next` targets, the sign-in detour, same-origin posts."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

__all__ = [
    "DEFAULT_AFTER_SIGNIN",
    "cookie_secure",
    "redirect",
    "safe_next",
    "same_origin",
    "signin_url",
]

DEFAULT_AFTER_SIGNIN = "/dashboard"
MAX_NEXT = 2048


def safe_next(value: str | None, default: str = DEFAULT_AFTER_SIGNIN) -> str:
    """`value` when it is a path on this site, else `default` (no `//host`, no `https://…`)."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return default
    # Browsers drop tabs and newlines and read `\` as `/`, so `/\t/evil` and `/\evil` both
    # mean `//evil`: refuse anything but printable ASCII without backslashes.
    if any(not 0x21 <= ord(ch) <= 0x7E or ch == "\\" for ch in value):
        return default
    if value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def signin_url(request: Request) -> str:
    """The sign-in page, with `next` pointing back at the page that was asked for."""
    target = quote(request.url.path, safe="/-._~!$&'()*+,;=:@%")
    if request.url.query:
        target += "?" + request.url.query
    target = safe_next(target, default="")
    return "/auth/signin" + (f"?{urlencode({'next': target})}" if target else "")


def redirect(request: Request, url: str) -> Response:
    """A 303 to `url`; for an htmx request, an `HX-Redirect` so the whole page changes."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _origin_host(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def same_origin(request: Request) -> bool:
    """False when a browser says this form was posted from another site (`Origin` header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser form post, or an old browser: SameSite cookies still apply
    host = _origin_host(origin)
    if host is None:
        return False
    allowed = {request.headers.get("host", "").lower()}
    settings = getattr(request.app.state, "settings", None)
    public_url = getattr(settings, "public_url", None)
    if isinstance(public_url, str):
        allowed.add(_origin_host(public_url) or "")
    return host in allowed - {""}


def cookie_secure(request: Request) -> bool:
    """Whether cookies should carry `Secure` (the panel is reached over HTTPS)."""
    settings = getattr(request.app.state, "settings", None)
    public_url = getattr(settings, "public_url", None)
    return request.url.scheme == "https" or (
        isinstance(public_url, str) and public_url.startswith("https://")
    )
