"""The authorization matrix: every `/api/v1` route x every kind of caller -> one exact status.

Routes are enumerated from the app itself, so a route added without an entry in `ROUTES`
fails `test_every_api_route_has_an_entry`. An entry names a `Rule` (who may call it) and, for
routes that change things, a `prepare` hook that makes a fresh target for each caller, so an
allowed caller gets the real success status rather than a 404 left behind by the previous one.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stellarstack.panel.db.models import Subuser, User
from tests.panel.admin.world import ACTORS, World, add_user, key_for, world

__all__ = ["world"]

AUTH_FAILURES = {"anonymous": 401, "suspended": 401, "revoked_key": 401, "expired_session": 401}
SESSIONS = {
    "other_user",
    "subuser_without",
    "subuser_with",
    "owner",
    "support",
    "moderator",
    "admin",
    "super_admin",
}
CLIENT_KEYS = {"key_with", "key_without"}
APP_KEYS = {"app_key_with", "app_key_without"}
STAFF = {"support", "moderator", "admin", "super_admin"}
MODERATORS = {"moderator", "admin", "super_admin"}
ADMINS = {"admin", "super_admin"}


@dataclass(frozen=True)
class Rule:
    """Expected status per actor: `allowed` get `ok`; the rest get what their kind earns."""

    ok: int
    allowed: frozenset[str]
    denied: int = 403
    # Overrides for particular actors (e.g. 404 for a server the caller cannot see).
    special: dict[str, int] = field(default_factory=dict)

    def expected(self, actor: str) -> int:
        """The status `actor` must get."""
        if actor in self.special:
            return self.special[actor]
        if actor in AUTH_FAILURES:
            return AUTH_FAILURES[actor]
        return self.ok if actor in self.allowed else self.denied


def public(status: int) -> Rule:
    """Anyone gets `status`; dead cookies are ignored, but a bad API key is a 401 everywhere
    (every `/api/v1` request is counted against its caller, so the key is checked)."""
    everyone = frozenset(ACTORS)
    return Rule(status, everyone, special={a: status for a in AUTH_FAILURES if a != "revoked_key"})


def signed_in(status: int) -> Rule:
    """Any session or client key."""
    return Rule(status, frozenset(SESSIONS | CLIENT_KEYS))


def session_only(status: int) -> Rule:
    """Browser sessions only: keys cannot manage credentials."""
    return Rule(status, frozenset(SESSIONS))


def platform(status: int, roles: set[str], *, key_ok: bool = True) -> Rule:
    """Staff with a platform permission; application keys that carry it."""
    allowed = set(roles) | ({"app_key_with"} if key_ok else set())
    return Rule(status, frozenset(allowed))


def on_server(status: int, staff: set[str], *, unrelated_ok: bool = False) -> Rule:
    """A server permission: owner, full subuser and owner's full key, plus `staff` roles."""
    allowed = {"owner", "subuser_with", "key_with"} | staff
    if unrelated_ok:
        allowed |= {"subuser_without", "key_without"}
    return Rule(status, frozenset(allowed), special={"other_user": 404})


Prepare = Callable[[World, str], Awaitable[dict[str, Any]]]


async def _nothing(world: World, actor: str) -> dict[str, Any]:
    return {}


async def _fresh_user(world: World, actor: str) -> dict[str, Any]:
    user = await add_user(world.database, f"target-{uuid.uuid4().hex[:10]}@example.test")
    return {"user_id": user.id}


async def _fresh_suspended_user(world: World, actor: str) -> dict[str, Any]:
    user = await add_user(world.database, f"gone-{uuid.uuid4().hex[:10]}@example.test")
    async with world.database.sessionmaker() as db:
        row = await db.get(User, user.id)
        assert row is not None
        row.suspended = True
        await db.commit()
    return {"user_id": user.id}


async def _fresh_subuser(world: World, actor: str) -> dict[str, Any]:
    user = await add_user(world.database, f"sub-{uuid.uuid4().hex[:10]}@example.test")
    async with world.database.sessionmaker() as db:
        subuser = Subuser(user_id=user.id, server_id=world.server_id, permissions=["server.view"])
        db.add(subuser)
        await db.commit()
    return {"subuser_id": subuser.id}


async def _own_key(world: World, actor: str) -> dict[str, Any]:
    # A key of the caller's own account (the owner's for anonymous callers: they must not
    # get to delete it either).
    user = world.user_of(actor) if actor != "anonymous" else world.users["owner"]
    key_id = await key_for(world.database, user, ["server.view"], return_id=True)
    return {"key_id": key_id}


def _unique_email(world: World, actor: str) -> dict[str, Any]:
    return {"email": f"new-{uuid.uuid4().hex[:10]}@example.test"}


@dataclass(frozen=True)
class Entry:
    """One route in the matrix: its rule, and how to call it."""

    rule: Rule
    prepare: Prepare = _nothing
    body: Callable[[World, str], dict[str, Any]] | None = None
    # Routes that end the caller's own sessions run after all the others, in this order.
    last: int = 0
    headers: Callable[[World, str], dict[str, str]] | None = None


S = "/api/v1/servers/{server_id}/subusers"
ROUTES: dict[tuple[str, str], Entry] = {
    # auth (accounts work): sign-in answers 401 to wrong credentials whoever asks
    # (each caller from its own address and account, so the sign-in flood limits stay out)
    ("POST", "/api/v1/auth/sign-in"): Entry(
        public(401),
        body=lambda w, a: {"email": f"nobody-{a}@example.test", "password": "wrong"},
        headers=lambda w, a: {"X-Forwarded-For": f"192.0.2.{ACTORS.index(a) + 1}"},
    ),
    ("POST", "/api/v1/auth/sign-out"): Entry(public(204), last=2),
    ("GET", "/api/v1/auth/session"): Entry(signed_in(200)),
    ("GET", "/api/v1/users/me"): Entry(signed_in(200)),
    # two-factor (2FA work). Bodies are empty: a caller who gets past the guard meets a 422.
    ("GET", "/api/v1/auth/2fa"): Entry(signed_in(200)),
    ("POST", "/api/v1/auth/2fa/setup"): Entry(session_only(200)),
    ("POST", "/api/v1/auth/2fa/enable"): Entry(session_only(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/2fa/disable"): Entry(session_only(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/2fa/recovery-codes"): Entry(session_only(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/2fa/challenge"): Entry(public(422), body=lambda w, a: {}),
    # accounts (accounts work): signed-out flows answer the same to everyone; empty bodies
    # meet a 422 once past any guard
    ("POST", "/api/v1/auth/sign-up"): Entry(public(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/forgot-password"): Entry(public(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/reset-password"): Entry(public(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/verify-email"): Entry(public(422), body=lambda w, a: {}),
    ("POST", "/api/v1/auth/verify-email/resend"): Entry(public(422), body=lambda w, a: {}),
    ("PATCH", "/api/v1/users/me"): Entry(signed_in(200), body=lambda w, a: {"name": "Matrix"}),
    ("POST", "/api/v1/users/me/password"): Entry(session_only(422), body=lambda w, a: {}),
    ("GET", "/api/v1/users/me/sessions"): Entry(session_only(200)),
    ("DELETE", "/api/v1/users/me/sessions/{session_id}"): Entry(session_only(404)),
    ("DELETE", "/api/v1/users/me/sessions"): Entry(session_only(204), last=1),
    # OAuth (2FA/OAuth work); no provider is configured here, so "github" is unknown
    ("GET", "/api/v1/auth/oauth/providers"): Entry(public(200)),
    ("GET", "/api/v1/auth/oauth/accounts"): Entry(session_only(200)),
    ("DELETE", "/api/v1/auth/oauth/accounts/{provider_id}"): Entry(session_only(404)),
    ("GET", "/api/v1/auth/oauth/{provider_id}/authorize"): Entry(public(404)),
    ("POST", "/api/v1/auth/oauth/{provider_id}/link"): Entry(session_only(404)),
    # the callback always ends in a redirect to a page that explains what went wrong
    ("GET", "/api/v1/auth/oauth/{provider_id}/callback"): Entry(public(303)),
    # API keys: managed from a browser session only
    ("GET", "/api/v1/users/me/api-keys"): Entry(session_only(200)),
    ("POST", "/api/v1/users/me/api-keys"): Entry(
        session_only(201), body=lambda w, a: {"name": "matrix", "permissions": ["server.view"]}
    ),
    ("DELETE", "/api/v1/users/me/api-keys/{key_id}"): Entry(session_only(204), prepare=_own_key),
    # admin
    ("GET", "/api/v1/admin/stats"): Entry(platform(200, STAFF)),
    ("GET", "/api/v1/admin/users"): Entry(platform(200, STAFF)),
    ("POST", "/api/v1/admin/users"): Entry(
        platform(201, ADMINS),
        body=lambda w, a: {**_unique_email(w, a), "password": "long enough password"},
    ),
    ("GET", "/api/v1/admin/users/{user_id}"): Entry(platform(200, STAFF), prepare=_fresh_user),
    ("PATCH", "/api/v1/admin/users/{user_id}"): Entry(
        platform(200, ADMINS), prepare=_fresh_user, body=lambda w, a: {"name": "Renamed"}
    ),
    ("POST", "/api/v1/admin/users/{user_id}/suspend"): Entry(
        platform(200, MODERATORS), prepare=_fresh_user, body=lambda w, a: {"reason": "matrix"}
    ),
    ("POST", "/api/v1/admin/users/{user_id}/unsuspend"): Entry(
        platform(200, MODERATORS), prepare=_fresh_suspended_user
    ),
    ("GET", "/api/v1/admin/audit"): Entry(platform(200, STAFF)),
    # subusers (support reads every server; admins do everything)
    ("GET", S): Entry(on_server(200, STAFF)),
    ("POST", S): Entry(
        on_server(201, ADMINS),
        body=lambda w, a: {**_unique_email(w, a), "permissions": ["server.view"]},
    ),
    ("GET", S + "/{subuser_id}"): Entry(on_server(200, STAFF), prepare=_fresh_subuser),
    ("PATCH", S + "/{subuser_id}"): Entry(
        on_server(200, ADMINS),
        prepare=_fresh_subuser,
        body=lambda w, a: {"permissions": ["server.view"]},
    ),
    ("DELETE", S + "/{subuser_id}"): Entry(on_server(204, ADMINS), prepare=_fresh_subuser),
    # nodes and commands (commands work; node.view looks, node.settings sends). Ids are random:
    # a caller who gets past the guard meets a 404 for the missing node or command.
    ("GET", "/api/v1/commands/{command_id}"): Entry(signed_in(404)),
    ("POST", "/api/v1/nodes/{node_id}/commands"): Entry(
        platform(404, ADMINS), body=lambda w, a: {"type": "node.ping"}
    ),
    ("POST", "/api/v1/nodes/{node_id}/ping"): Entry(platform(404, ADMINS)),
    ("GET", "/api/v1/nodes/{node_id}/health"): Entry(platform(404, STAFF)),
    # blueprints (blueprints work): everyone signed in browses; admins import and sync
    ("GET", "/api/v1/blueprints"): Entry(signed_in(200)),
    ("GET", "/api/v1/blueprints/{ref}"): Entry(signed_in(404)),
    ("GET", "/api/v1/blueprints/{ref}/versions"): Entry(signed_in(404)),
    ("POST", "/api/v1/admin/blueprints/import"): Entry(platform(422, ADMINS), body=lambda w, a: {}),
    ("POST", "/api/v1/admin/blueprints/sync"): Entry(platform(422, ADMINS), body=lambda w, a: {}),
    # nodes (registration work): node.* platform permissions (staff may look, admins change);
    # application keys that carry them; a daemon registers with its own token
    ("GET", "/api/v1/nodes"): Entry(platform(200, STAFF)),
    ("GET", "/api/v1/nodes/{node_id}"): Entry(platform(404, STAFF)),
    ("PATCH", "/api/v1/nodes/{node_id}"): Entry(platform(404, ADMINS), body=lambda w, a: {}),
    ("DELETE", "/api/v1/nodes/{node_id}"): Entry(platform(404, ADMINS)),
    ("POST", "/api/v1/nodes/{node_id}/token"): Entry(platform(404, ADMINS)),
    ("GET", "/api/v1/nodes/{node_id}/servers"): Entry(platform(404, STAFF)),
    ("GET", "/api/v1/nodes/{node_id}/allocations"): Entry(platform(404, STAFF)),
    ("POST", "/api/v1/nodes/{node_id}/allocations"): Entry(
        platform(404, ADMINS), body=lambda w, a: {"ip": "127.0.0.1", "ports": [25565]}
    ),
    ("DELETE", "/api/v1/nodes/{node_id}/allocations/{allocation_id}"): Entry(platform(404, ADMINS)),
    ("GET", "/api/v1/nodes/{node_id}/stats"): Entry(platform(404, STAFF)),
    ("POST", "/api/v1/admin/nodes/token"): Entry(platform(422, ADMINS), body=lambda w, a: {}),
    ("POST", "/api/v1/nodes/register"): Entry(public(422), body=lambda w, a: {}),
    ("GET", "/api/v1/nodes/install-daemon.sh"): Entry(public(200)),
}


async def api_routes(world: World) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under /api/v1, from its OpenAPI description."""
    found: set[tuple[str, str]] = set()
    description = (await world.client.get("/openapi.json")).json()
    for path, operations in description["paths"].items():
        if path.startswith("/api/v1"):
            found |= {(method.upper(), path) for method in operations}
    return found


async def test_every_api_route_has_an_entry(world: World) -> None:
    served = await api_routes(world)
    missing = sorted(served - set(ROUTES))
    stale = sorted(set(ROUTES) - served)
    assert not missing, f"routes without an authorization-matrix entry: {missing}"
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


async def test_authorization_matrix(world: World) -> None:
    mismatches: list[str] = []
    ordered = sorted(ROUTES.items(), key=lambda item: item[1].last)
    cells = 0
    for (method, template), entry in ordered:
        for actor in ACTORS:
            params = {
                "server_id": world.server_id,
                "node_id": uuid.uuid4(),
                "command_id": uuid.uuid4(),
                "session_id": uuid.uuid4(),
                "allocation_id": uuid.uuid4(),
                "provider_id": "github",
                "ref": "no-such-blueprint",
                **await entry.prepare(world, actor),
            }
            path = template.format(**params)
            body = entry.body(world, actor) if entry.body else None
            extra = entry.headers(world, actor) if entry.headers else {}
            world.client.cookies.clear()  # only the actor's own credentials, nothing left over
            response = await world.client.request(
                method, path, headers={**world.headers(actor), **extra}, json=body
            )
            cells += 1
            want = entry.rule.expected(actor)
            if response.status_code != want:
                detail = response.text[:160]
                mismatches.append(
                    f"{method} {template} as {actor}: {response.status_code} != {want} {detail}"
                )
    print(f"\nauthorization matrix: {len(ROUTES)} routes x {len(ACTORS)} actors = {cells} cells")
    assert not mismatches, "\n".join(mismatches)
