"""The authorization matrix: every `/api/v1` route x every kind of caller -> one exact status.

Routes are enumerated from the app itself, so a route added without an entry in `ROUTES`
fails `test_every_api_route_has_an_entry`. An entry names a `Rule` (who may call it) and, for
routes that change things, a `prepare` hook that makes a fresh target for each caller, so an
allowed caller gets the real success status rather than a 404 left behind by the previous one.
Areas added later keep their entries in `tests/panel/authz/<area>.py`.
"""

from __future__ import annotations

import uuid

from tests.panel.admin.world import ACTORS, World, world
from tests.panel.authz import console, events, power, servers
from tests.panel.authz.rules import (
    ADMINS,
    MODERATORS,
    STAFF,
    Entry,
    _fresh_subuser,
    _fresh_suspended_user,
    _fresh_user,
    _own_key,
    _unique_email,
    on_server,
    platform,
    public,
    session_only,
    signed_in,
)

__all__ = ["world"]


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
for _area in (servers, power, console, events):
    ROUTES |= _area.ENTRIES


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
