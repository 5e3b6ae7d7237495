"""SSE test support: a real panel served by uvicorn on loopback, an SSE reader, a small cast.

The panel runs in the test's event loop (uvicorn on a free port), so streams go over real
sockets exactly as a browser's would; events are published through the real fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from stellarstack.broker import Broker
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Subuser
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.fanout import publish_event, publish_node_status
from stellarstack.protocol.events import Event, ServerStatus, ServerStatusChange
from stellarstack.serve import listen
from tests.panel.admin.world import add_user, session_for
from tests.panel.db.factories import make_blueprint, make_node, make_server
from tests.support.services import free_port

__all__ = ["Cast", "SseClient", "make_cast", "serve", "status_event"]


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve the app (lifespan included) on a loopback port; yield its base URL."""
    port = free_port()
    listener = listen(app, "127.0.0.1", port)  # TCP_NODELAY, as the panel really listens
    server = listener.server
    server.config.timeout_graceful_shutdown = 1
    task = asyncio.create_task(listener.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class SseClient:
    """One open event stream, parsed in the background into events and comments."""

    def __init__(self, base_url: str, headers: dict[str, str], query: str = "") -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(10, read=None))
        self.path = f"/api/v1/events/stream{query}"
        self.headers = headers
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.comments: list[str] = []
        self.retry: str | None = None
        self.status_code = 0
        self.ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self.body = b""

    async def __aenter__(self) -> SseClient:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._opened.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.client.aclose()

    async def _read(self) -> None:
        try:
            async with self.client.stream("GET", self.path, headers=self.headers) as response:
                self.status_code = response.status_code
                self.content_type = response.headers.get("content-type", "")
                if response.status_code != 200:
                    self.body = await response.aread()
                    return
                self._opened.set()
                event: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line == "":
                        if event:
                            self.events.put_nowait(event)
                        event = {}
                    elif line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "retry":
                            self.retry = value
                        else:
                            event[name] = event[name] + "\n" + value if name in event else value
        finally:
            self._opened.set()
            self.ended.set()

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next event (fails the test after `timeout` seconds)."""
        return await asyncio.wait_for(self.events.get(), timeout)

    async def quiet(self, seconds: float) -> list[dict[str, str]]:
        """Every event received within `seconds`."""
        await asyncio.sleep(seconds)
        found = []
        while not self.events.empty():
            found.append(self.events.get_nowait())
        return found


@dataclass
class Cast:
    """Alice owns server A, Bob owns B, Carol is a subuser of A; Root is an admin."""

    node_id: uuid.UUID
    server_a: uuid.UUID
    server_b: uuid.UUID
    carol_subuser: uuid.UUID
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


async def make_cast(database: Database, carol_permissions: list[str] | None = None) -> Cast:
    """Create the cast's rows and a browser session for each person."""
    from stellarstack.panel.db.enums import Role

    suffix = uuid.uuid4().hex[:8]
    people = {
        "alice": await add_user(database, f"alice-{suffix}@example.test"),
        "bob": await add_user(database, f"bob-{suffix}@example.test"),
        "carol": await add_user(database, f"carol-{suffix}@example.test"),
        "root": await add_user(database, f"root-{suffix}@example.test", Role.ADMIN),
    }
    async with database.sessionmaker() as db:
        node, blueprint = make_node(f"n-{suffix}"), make_blueprint(f"bp-{suffix}")
        alice = await db.merge(people["alice"])
        bob = await db.merge(people["bob"])
        server_a = make_server(alice, node, blueprint, "A <b>world</b>")
        server_b = make_server(bob, node, blueprint, "B world")
        db.add_all([node, blueprint, server_a, server_b])
        await db.flush()
        sub = Subuser(
            user_id=people["carol"].id,
            server_id=server_a.id,
            permissions=carol_permissions or ["server.view"],
        )
        db.add(sub)
        await db.commit()
        cast = Cast(node.id, server_a.id, server_b.id, sub.id)
    for name, user in people.items():
        cast.users[name] = user.id
        cast.headers[name] = await session_for(database, user)
    return cast


def status_event(cast: Cast, server_id: uuid.UUID, reason: str) -> Event:
    """A `server.status` event of one of the cast's servers, tagged with `reason`."""
    data = ServerStatusChange(status=ServerStatus.RUNNING, reason=reason)
    return Event.create(data, node_id=str(cast.node_id), server_id=str(server_id))


async def publish_status(broker: Broker, cast: Cast, server_id: uuid.UUID, reason: str) -> None:
    """Fan out a status event through the real fan-out (as the event consumer does)."""
    await publish_event(broker, status_event(cast, server_id, reason))


async def publish_node(broker: Broker, cast: Cast, reason: str) -> None:
    """Fan out a node-wide `node.status` change."""
    await publish_node_status(
        broker, str(cast.node_id), NodeStatus.ONLINE, NodeStatus.UNHEALTHY, reason
    )


def reason_of(event: dict[str, str]) -> Any:
    """The `reason` an event carries (status events) or None."""
    import json

    return json.loads(event["data"]).get("data", {}).get("reason")
