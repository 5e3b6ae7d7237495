"""Cross-site request forgery protection: one ASGI middleware for pages and the API.

Two checks on every state-changing request (POST, PUT, PATCH, DELETE):

1. **Origin.** A browser names the page that sent the request (`Origin`, else `Referer`). A
   request from any other site than this panel (its public URL or the Host it was sent to) is
   refused, signed in or not, so another site can neither act as a user nor sign a victim
   into the attacker's account.
2. **Token** (double submit). Each browser gets a random `stellar_csrf` cookie (readable by our
   script, SameSite=Lax). A request that carries the session cookie must repeat it in the
   `X-CSRF-Token` header (htmx adds it from `<meta name="csrf-token">`) or in a `csrf_token`
   form field; they are compared in constant time. Another site can send the cookie but never
   read it, so it cannot forge the copy.

Requests with `Authorization: Bearer …` (API keys, daemons) carry no ambient credential and
are exempt. Templates read the token as `request.state.csrf_token`.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stellarstack.logs import get_logger
from stellarstack.panel.auth.sessions import SESSION_COOKIE
from stellarstack.panel.errors import problem_response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CsrfMiddleware",
    "is_same_origin",
]

log = get_logger(__name__)

CSRF_COOKIE = "stellar_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Form bodies larger than this must send the header instead (file uploads do, via htmx).
MAX_FORM_SCAN = 64 * 1024
CROSS_SITE = "This request was sent from another site, so it was not accepted."
STALE_FORM = "This form has expired or was not sent by the panel. Reload the page and try again."


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def is_same_origin(request: Request) -> bool:
    """Whether the page that sent this request is this panel (True when the browser is silent)."""
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer")
        if not source:
            return True  # not a browser, or a browser told to hide it: the token check remains
    host = _host_of(source)
    if host is None:
        return False  # "null" (sandboxed frames, data: URLs) or garbage
    allowed = {request.headers.get("host", "").lower()}
    public_url = getattr(getattr(request.app.state, "settings", None), "public_url", None)
    if isinstance(public_url, str):
        allowed.add(_host_of(public_url) or "")
    return host in allowed - {""}


def _valid_token(value: str | None) -> bool:
    return bool(value) and value is not None and 20 <= len(value) <= 128 and value.isascii()


def _cookie(token: str, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{CSRF_COOKIE}={token}; Path=/; SameSite=Lax; Max-Age=31536000{flags}"


class CsrfMiddleware:
    """Refuse cross-site and token-less state changes; hand every browser a token."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap the app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check an HTTP request, then pass it on (with its body replayed if it was read)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie_token = request.cookies.get(CSRF_COOKIE)
        token: str = (
            cookie_token
            if cookie_token is not None and _valid_token(cookie_token)
            else secrets.token_urlsafe(32)
        )
        scope.setdefault("state", {})["csrf_token"] = token
        if request.method in UNSAFE_METHODS and not self._exempt(request):
            refusal, receive = await self._check(request, receive, cookie_token)
            if refusal is not None:
                log.warning("csrf.refused", path=request.url.path, reason=refusal)
                await self._refuse(request, refusal)(scope, receive, send)
                return
        if token == cookie_token:
            await self.app(scope, receive, send)
            return
        secure = request.url.scheme == "https" or str(
            getattr(getattr(request.app.state, "settings", None), "public_url", "") or ""
        ).startswith("https://")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", _cookie(token, secure))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    @staticmethod
    def _exempt(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth[:7].lower() == "bearer "

    async def _check(
        self, request: Request, receive: Receive, cookie_token: str | None
    ) -> tuple[str | None, Receive]:
        if not is_same_origin(request):
            return CROSS_SITE, receive
        if SESSION_COOKIE not in request.cookies:
            return None, receive
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            sent, receive = await self._form_token(request, receive)
        if (
            not _valid_token(cookie_token)
            or not sent
            or not hmac.compare_digest(sent.encode(), (cookie_token or "").encode())
        ):
            return STALE_FORM, receive
        return None, receive

    @staticmethod
    async def _form_token(request: Request, receive: Receive) -> tuple[str | None, Receive]:
        """Read `csrf_token` from a urlencoded body, then hand the body on unchanged."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return None, receive
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None, receive  # the client went away
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > MAX_FORM_SCAN:
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        if more:
            return None, replay
        try:
            values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(CSRF_FIELD)
        except ValueError:
            values = None
        return (values[0] if values else None), replay

    @staticmethod
    def _refuse(request: Request, detail: str) -> ASGIApp:
        # Imported here: the web package imports the auth package, not the other way round.
        from stellarstack.panel.web.error_pages import error_page, wants_html

        if wants_html(request):
            return error_page(request, 403, detail)
        return problem_response(request, 403, detail=detail, slug="csrf-failed")
