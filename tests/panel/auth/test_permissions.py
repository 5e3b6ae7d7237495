"""The permission catalogue and role matrix (spec §4.4): what each role holds, and the guards."""

from __future__ import annotations

from itertools import pairwise

import pytest

from stellarstack.panel.auth.permissions import (
    PLATFORM_PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLE_SERVER_PERMISSIONS,
    SERVER_PERMISSIONS,
    outranks,
    platform_permissions,
    require_permission,
    require_server_permission,
)
from stellarstack.panel.db.enums import Role


def test_roles_hold_strictly_growing_platform_permissions() -> None:
    ladder = [Role.USER, Role.SUPPORT, Role.MODERATOR, Role.ADMIN, Role.SUPER_ADMIN]
    for lower, higher in pairwise(ladder):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher], (lower, higher)
        assert outranks(higher, lower) and not outranks(lower, higher)
    assert ROLE_PERMISSIONS[Role.SUPER_ADMIN] == frozenset(PLATFORM_PERMISSIONS)


@pytest.mark.parametrize(
    ("role", "held", "not_held"),
    [
        (Role.USER, set(), {"user.view", "audit.view"}),
        (Role.SUPPORT, {"user.view", "audit.view", "node.view"}, {"user.suspend", "user.update"}),
        (Role.MODERATOR, {"user.suspend"}, {"user.update", "user.create", "node.create"}),
        (Role.ADMIN, {"user.update", "node.create", "platform.blueprints"}, {"platform.settings"}),
        (Role.SUPER_ADMIN, {"platform.settings", "platform.billing"}, set()),
    ],
)
def test_role_matrix(role: Role, held: set[str], not_held: set[str]) -> None:
    assert held <= platform_permissions(role)
    assert not (not_held & platform_permissions(role))


def test_staff_reach_into_servers_by_role() -> None:
    assert ROLE_SERVER_PERMISSIONS[Role.USER] == frozenset()
    assert "server.console" in ROLE_SERVER_PERMISSIONS[Role.SUPPORT]
    assert "server.console.send" not in ROLE_SERVER_PERMISSIONS[Role.SUPPORT]
    assert "server.power.kill" in ROLE_SERVER_PERMISSIONS[Role.MODERATOR]
    assert "server.files.write" not in ROLE_SERVER_PERMISSIONS[Role.MODERATOR]
    assert ROLE_SERVER_PERMISSIONS[Role.ADMIN] == frozenset(SERVER_PERMISSIONS)


def test_catalogues_do_not_overlap_and_names_are_dotted() -> None:
    assert not set(SERVER_PERMISSIONS) & set(PLATFORM_PERMISSIONS)
    assert all(name.startswith("server.") for name in SERVER_PERMISSIONS)
    assert all("." in name and name == name.lower() for name in PLATFORM_PERMISSIONS)


def test_guards_refuse_unknown_permission_names_at_import_time() -> None:
    with pytest.raises(ValueError, match="unknown platform permission"):
        require_permission("server.view")
    with pytest.raises(ValueError, match="unknown server permission"):
        require_server_permission("user.view")
    with pytest.raises(ValueError):
        require_server_permission("server.everything")
