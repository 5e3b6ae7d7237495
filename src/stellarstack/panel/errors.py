"""Panel errors and their one mapping to RFC 7807 problem responses (spec §14.2).

PanelError                 500 internal
├── BadRequest             400
│   └── ValidationFailed   422 (lists the fields)
├── Unauthorized           401
├── Forbidden              403
├── NotFound               404
├── Conflict               409
├── PayloadTooLarge        413
├── RateLimited            429 (Retry-After)
└── DependencyUnavailable  503
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stellarstack.logs import get_logger

__all__ = [
    "BadRequest",
    "Conflict",
    "DependencyUnavailable",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PanelError",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "ValidationFailed",
    "install_error_handlers",
    "problem_response",
]

log = get_logger(__name__)
TYPE_BASE = "https://stellarstack.dev/problems/"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: a dotted path and a message a person can act on."""

    field: str
    message: str


class PanelError(Exception):
    """Base of every error the panel reports to a client."""

    status = 500
    slug = "internal-error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or HTTPStatus(self.status).phrase)
        self.detail = detail
        self.headers = headers or {}


class BadRequest(PanelError):
    """The request is malformed."""

    status, slug = 400, "bad-request"


class ValidationFailed(BadRequest):
    """The request is well formed but some fields are invalid."""

    status, slug = 422, "validation-failed"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail or "Some fields are invalid.")
        self.errors = errors


class Unauthorized(PanelError):
    """No valid credentials were presented."""

    status, slug = 401, "unauthorized"


class Forbidden(PanelError):
    """The credentials are valid but do not allow this."""

    status, slug = 403, "forbidden"


class NotFound(PanelError):
    """The resource does not exist (or is not visible to the caller)."""

    status, slug = 404, "not-found"


class Conflict(PanelError):
    """The request conflicts with the current state."""

    status, slug = 409, "conflict"


class PayloadTooLarge(PanelError):
    """The request body is larger than allowed."""

    status, slug = 413, "payload-too-large"


class RateLimited(PanelError):
    """Too many requests; retry after the given number of seconds."""

    status, slug = 429, "rate-limited"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(
            detail or f"Too many requests. Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class DependencyUnavailable(PanelError):
    """A dependency the request needs (database, broker, node) is down."""

    status, slug = 503, "dependency-unavailable"


def request_id_of(request: Request) -> str | None:
    """The id the request-id middleware gave this request."""
    rid = getattr(request.state, "request_id", None)
    return str(rid) if rid else None


def problem_response(
    request: Request,
    status: int,
    *,
    detail: str | None = None,
    slug: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the `{"success": false, "error": {...}}` envelope of spec §14.2."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
        "detail": detail or phrase,
        "instance": request_id_of(request),
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(
        {"success": False, "error": body},
        status_code=status,
        headers=headers,
        media_type="application/problem+json",
    )


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def _validation_errors(exc: RequestValidationError) -> tuple[str, list[FieldError]]:
    errors: list[FieldError] = []
    detail = "Some fields are invalid."
    for err in exc.errors():
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            detail = "The request body is not valid JSON."
        errors.append(FieldError(_field_path(err.get("loc", ())), str(err.get("msg", "invalid"))))
    return detail, errors


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception the panel can raise to one RFC 7807 response."""

    @app.exception_handler(PanelError)
    async def _panel_error(request: Request, exc: PanelError) -> JSONResponse:
        errors = exc.errors if isinstance(exc, ValidationFailed) else None
        return problem_response(
            request,
            exc.status,
            detail=exc.detail,
            slug=exc.slug,
            errors=errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_errors(exc)
        status = 400 if detail.startswith("The request body is not valid JSON") else 422
        return problem_response(
            request, status, detail=detail, slug="validation-failed", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}."
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(
            request, exc.status_code, detail=detail, headers=dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.unhandled_error", path=request.url.path, error=repr(exc))
        return problem_response(
            request,
            500,
            detail="An unexpected error occurred; it has been logged.",
            slug="internal-error",
        )
