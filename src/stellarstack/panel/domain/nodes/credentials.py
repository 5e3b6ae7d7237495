"""Per-node Redis credentials: one ACL user per node, limited to its own keys and channels.

The user is `node-{id}` (`protocol.keys.node_acl_username`); its password is the node API
token, given to Redis as its SHA-256 (`#hash`), which is also what the panel stores, so the
panel can re-create every user after a Redis restart without knowing a single token. The
commands are the least set the daemon's broker calls need (see `NODE_COMMANDS`).

On the embedded default (no Redis) there is nothing to create: every call is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.exceptions as redis_errors
from redis.asyncio import Redis

from stellarstack.logs import get_logger
from stellarstack.panel.errors import DependencyUnavailable
from stellarstack.protocol import keys

__all__ = ["NODE_COMMANDS", "NodeCredentials", "acl_rules"]

log = get_logger(__name__)

NODE_COMMANDS = (
    "ping",  # health checks of the connection pool
    "xreadgroup",  # read its command stream in the `daemon` group
    "xack",  # acknowledge executed commands
    "xautoclaim",  # reclaim its own stuck deliveries
    "xpending",  # delivery counts of reclaimed entries
    "xgroup|create",  # create its consumer group (MKSTREAM) on first start
    "xadd",  # events, and dead letters of its command stream
    "publish",  # its own channels (`stellar:nodes:{id}:*`)
    "select",  # a database number in the Redis URL
    # (redis-py also sends CLIENT SETINFO on connect; Redis refuses it and redis-py ignores that)
)
"""What a node's ACL user may run; everything else is refused (NOPERM)."""


def acl_rules(node_id: str, token_hash: str) -> list[str]:
    """ACL SETUSER rules for one node: its password hash, key and channel patterns, commands."""
    return [
        "reset",
        "on",
        f"#{token_hash}",
        "resetkeys",
        f"~{keys.node_acl_key_pattern(node_id)}",
        "resetchannels",
        f"&{keys.node_acl_channel_pattern(node_id)}",
        "-@all",
        *(f"+{command}" for command in NODE_COMMANDS),
    ]


class NodeCredentials:
    """Creates, rotates and revokes node ACL users on the panel's Redis (no-op without one)."""

    def __init__(self, redis_url: str | None, *, timeout: float = 5.0) -> None:
        self.redis_url = (
            redis_url if redis_url and redis_url.startswith(("redis", "unix")) else None
        )
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        """Whether there is a Redis to create users on."""
        return self.redis_url is not None

    def _client(self) -> Redis:
        assert self.redis_url is not None
        return Redis.from_url(
            self.redis_url,
            decode_responses=True,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
        )

    async def _run(self, action: str, node_ids: Iterable[str], *commands: list[str]) -> None:
        client = self._client()
        try:
            for command in commands:
                await client.execute_command(*command)  # type: ignore[no-untyped-call]
            await self._save(client)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            log.error("nodes.credentials_unavailable", action=action, error=str(exc))
            raise DependencyUnavailable(
                "Redis is unreachable, so the node's credentials could not be changed; "
                "try again when Redis is back."
            ) from exc
        except redis_errors.RedisError as exc:
            log.error("nodes.credentials_failed", action=action, error=str(exc))
            raise DependencyUnavailable(
                f"Redis refused to change the node's credentials ({exc}); the panel's Redis "
                "user needs the ACL and CLIENT commands."
            ) from exc
        finally:
            await client.aclose()
        log.info("nodes.credentials_changed", action=action, nodes=list(node_ids))

    async def _save(self, client: Redis) -> None:
        """ACL SAVE when Redis keeps users in an ACL file; without one, `restore` re-creates."""
        try:
            await client.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
        except redis_errors.ResponseError as exc:
            if "ACL file" not in str(exc):
                raise

    async def grant(self, node_id: str, token_hash: str) -> None:
        """Create (or replace) the node's ACL user with this token."""
        if self.enabled:
            user = keys.node_acl_username(node_id)
            await self._run(
                "grant", [node_id], ["ACL", "SETUSER", user, *acl_rules(node_id, token_hash)]
            )

    async def rotate(self, node_id: str, token_hash: str) -> None:
        """Replace the node's token and disconnect every connection made with the old one."""
        if self.enabled:
            user = keys.node_acl_username(node_id)
            await self._run(
                "rotate",
                [node_id],
                ["ACL", "SETUSER", user, *acl_rules(node_id, token_hash)],
                ["CLIENT", "KILL", "USER", user],
            )

    async def revoke(self, node_id: str) -> None:
        """Delete the node's ACL user (Redis also closes its connections)."""
        if self.enabled:
            await self._run(
                "revoke", [node_id], ["ACL", "DELUSER", keys.node_acl_username(node_id)]
            )

    async def restore(self, nodes: Iterable[tuple[str, str]]) -> None:
        """Re-create the users of (node id, token hash) pairs, e.g. after Redis lost them."""
        pairs = list(nodes)
        if self.enabled and pairs:
            await self._run(
                "restore",
                [node_id for node_id, _ in pairs],
                *(
                    ["ACL", "SETUSER", keys.node_acl_username(node_id), *acl_rules(node_id, h)]
                    for node_id, h in pairs
                ),
            )
