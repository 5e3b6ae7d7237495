"""Who may see and administer nodes: the platform permissions of RBAC (`node.*`)."""

# No `from __future__ import annotations`: FastAPI must see the closure's real annotation.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from stellarstack.panel.auth.permissions import require_permission
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.models import User

__all__ = ["NodeCreator", "NodeEditor", "NodeRemover", "NodeViewer"]


def _user_with(permission: str) -> Callable[[Principal], Awaitable[User]]:
    guard = require_permission(permission)

    async def user_with(principal: Annotated[Principal, Depends(guard)]) -> User:
        return principal.user

    user_with.__name__ = f"user_with_{permission.replace('.', '_')}"
    return user_with


NodeViewer = Annotated[User, Depends(_user_with("node.view"))]
NodeCreator = Annotated[User, Depends(_user_with("node.create"))]
NodeEditor = Annotated[User, Depends(_user_with("node.settings"))]
NodeRemover = Annotated[User, Depends(_user_with("node.delete"))]
