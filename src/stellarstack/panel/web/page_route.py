"""`PageRoute`: page handlers answer in HTML, whatever goes wrong.

Dependencies such as `CurrentUser` raise the panel's errors; for a page, "not signed in"
becomes a detour through the sign-in page and everything else becomes an error page, so a
browser never sees JSON or a bare 500 from a page route.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from stellarstack.logs import get_logger
from stellarstack.panel.errors import PanelError, Unauthorized
from stellarstack.panel.web.error_pages import error_page
from stellarstack.panel.web.urls import redirect, signin_url

__all__ = ["PageRoute"]

log = get_logger(__name__)


class PageRoute(APIRoute):
    """An APIRoute whose errors render as pages (and whose 401s redirect to sign-in)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the page error mapping."""
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized:
                return redirect(request, signin_url(request))
            except PanelError as exc:
                return error_page(request, exc.status, exc.detail)
            except RequestValidationError:
                return error_page(request, 400)
            except StarletteHTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else None
                return error_page(request, exc.status_code, detail)
            except DBAPIError as exc:
                log.error("web.database_unavailable", path=request.url.path, error=repr(exc))
                return error_page(request, 503)
            except Exception as exc:
                log.exception("web.page_failed", path=request.url.path, error=repr(exc))
                return error_page(request, 500)

        return page_handler
