"""`GET /api/v1/events/stream`: live events over Server-Sent Events (see `stream.py`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from stellarstack.broker import BrokerError
from stellarstack.panel.deps import CurrentPrincipal, DbSession, SettingsDep, get_database
from stellarstack.panel.domain.events.stream import (
    StreamOptions,
    event_stream,
    hub_for,
    parse_last_event_id,
)
from stellarstack.panel.domain.events.visibility import credential_of, resolve_visibility
from stellarstack.panel.errors import (
    DependencyUnavailable,
    FieldError,
    RateLimited,
    ValidationFailed,
)

__all__ = ["router"]

router = APIRouter(tags=["events"])

MAX_SERVERS = 100


def _only_servers(value: str | None) -> frozenset[str] | None:
    """The `?servers=` narrowing as canonical server ids; 422 for anything else."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if len(parts) > MAX_SERVERS:
        message = f"At most {MAX_SERVERS} server ids, separated by commas."
        raise ValidationFailed([FieldError("servers", message)])
    try:
        return frozenset(str(uuid.UUID(p)) for p in parts)
    except ValueError:
        message = "Give server ids (UUIDs) separated by commas."
        raise ValidationFailed([FieldError("servers", message)]) from None


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    principal: CurrentPrincipal,
    db: DbSession,
    settings: SettingsDep,
    servers: Annotated[str | None, Query(max_length=4000)] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId")] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Live events of the servers and nodes the caller may see (resume with Last-Event-ID)."""
    resume = parse_last_event_id(last_event_id or last_event_id_query)
    credential = credential_of(request, principal)
    visibility = await resolve_visibility(db, credential, only=_only_servers(servers))
    if visibility is None:  # pragma: no cover - the principal was just authenticated
        raise DependencyUnavailable("Your access changed while connecting; try again.")
    hub = hub_for(request.app.state.broker)
    if hub.streams_of(principal.user.id) >= settings.events_max_streams_per_user:
        raise RateLimited(
            5,
            f"You already have {settings.events_max_streams_per_user} live event streams open "
            "here; close some tabs (one stream serves a whole page).",
        )
    try:
        sub = await hub.attach(credential, visibility, queue_size=settings.events_queue_size)
    except BrokerError as exc:
        raise DependencyUnavailable(
            "Live updates are unavailable: the event broker (Redis) does not answer. "
            "Pages still work; reload them to see changes.",
            headers={"Retry-After": "5"},
        ) from exc
    options = StreamOptions(
        heartbeat=settings.events_heartbeat,
        recheck=settings.events_access_recheck,
        retry_ms=settings.events_retry_ms,
    )
    body = event_stream(hub, sub, get_database(request), last_event_id=resume, options=options)
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)
