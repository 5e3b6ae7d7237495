"""Friendly HTML error pages for browsers; API clients keep their RFC 7807 JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from stellarstack.logs import get_logger
from stellarstack.panel.errors import PanelError
from stellarstack.panel.web.templating import render

__all__ = ["error_page", "install_error_pages", "wants_html"]

log = get_logger(__name__)

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response] | Response]

DEFAULT_DETAILS = {
    400: "The request could not be understood. Check the address and try again.",
    403: "Your account does not have access to this page.",
    404: "There is nothing at this address. It may have moved, or the link may be mistyped.",
    405: "This page cannot be used that way.",
    500: "Something went wrong on our side. It has been logged; try again in a moment.",
    503: "A service the panel depends on is unavailable. Try again in a moment.",
}


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser navigating to a page (not an API or asset request)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/")) or request.method not in ("GET", "HEAD", "POST"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, detail: str | None = None) -> Response:
    """The error page for a status, with a message a person can act on."""
    if status not in HTTPStatus._value2member_map_:
        status = 500
    title = HTTPStatus(status).phrase
    message = detail if detail and status < 500 else DEFAULT_DETAILS.get(status, title)
    template = "errors/404.html" if status == 404 else "errors/error.html"
    return render(request, template, status_code=status, status=status, title=title, detail=message)


def _html_first(previous: ExceptionHandler | None) -> ExceptionHandler:
    async def handler(request: Request, exc: Exception) -> Response:
        if wants_html(request) or previous is None:
            if isinstance(exc, PanelError):
                return error_page(request, exc.status, exc.detail)
            if isinstance(exc, StarletteHTTPException):
                detail = exc.detail if isinstance(exc.detail, str) else None
                return error_page(
                    request,
                    exc.status_code,
                    None if detail == HTTPStatus(exc.status_code).phrase else detail,
                )
            log.exception("web.unhandled_error", path=request.url.path, error=repr(exc))
            return error_page(request, 500)
        result = previous(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return handler


def install_error_pages(app: FastAPI) -> None:
    """Answer browsers with HTML error pages; call after the JSON handlers are installed."""
    for key in (StarletteHTTPException, PanelError, Exception):
        previous = app.exception_handlers.get(key)
        app.add_exception_handler(key, _html_first(previous))
