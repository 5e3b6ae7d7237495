"""The vocabulary of the authorization matrix: rules (who gets which status) and entries.

Each area lists its routes in its own module of this package (`servers.py`, `power.py`, …) as
an `ENTRIES` dict; `tests/panel/test_authorization_matrix.py` merges them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stellarstack.panel.db.models import Subuser, User
from tests.panel.admin.world import ACTORS, World, add_user, key_for

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
