"""Who may administer nodes: platform admins (a local check until RBAC's permissions land)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from stellarstack.panel.db.enums import Role
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser
from stellarstack.panel.errors import Forbidden

__all__ = ["NODE_ADMIN_ROLES", "NodeAdmin", "require_node_admin"]

NODE_ADMIN_ROLES = frozenset({Role.ADMIN, Role.SUPER_ADMIN})


async def require_node_admin(user: CurrentUser) -> User:
    """The signed-in user when they may manage nodes; 403 otherwise."""
    if user.role not in NODE_ADMIN_ROLES:
        raise Forbidden("Only administrators can manage nodes.")
    return user


NodeAdmin = Annotated[User, Depends(require_node_admin)]
