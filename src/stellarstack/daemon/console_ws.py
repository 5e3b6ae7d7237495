"""The console WebSocket on the daemon: `/api/servers/{server_id}/ws` (docs/console-protocol.md).

A browser connects directly with a console token the panel signed (spec §2.3 pattern C):
first message `{"event": "auth", "args": [token]}` (or `Authorization: Bearer` for other
clients). The socket then gets the status, the last lines of output and live frames; it may
send commands (`canWrite`) and power actions (the token's `power` list). Every limit here is
per socket, per IP or per server, so one client can only ever hurt its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from stellarstack.broker import BrokerError
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.console import Inbound, Outbound, ServerConsole, Viewer, ViewerClosed
from stellarstack.daemon.console import encode as encode_frame
from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.runtime import ContainerRuntimeError
from stellarstack.daemon.servers.manager import ServerManager
from stellarstack.logs import get_logger
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event
from stellarstack.protocol.tokens import (
    ConsoleClaims,
    PowerAction,
    TokenError,
    TokenExpiredError,
    read_public_key,
    verify_console,
)

__all__ = ["CloseCode", "ConsoleGate", "RateLimit", "mount_console"]

log = get_logger(__name__)

EXPIRY_WARNING = 60.0
"""Seconds before a token's `exp` when the socket is told to fetch a new one."""

MAX_COMMAND_CHARS = 4096
POWER_ACTIONS: tuple[str, ...] = get_args(PowerAction)
FLOOD_DROPS = 200
"""Messages refused for rate before the socket is closed as a flood."""


class CloseCode:
    """WebSocket close codes this endpoint uses (4xxx are ours, readable by browsers)."""

    TOO_BIG = 1009
    TOKEN_EXPIRED = 4001
    AUTH_FAILED = 4401
    UNKNOWN_SERVER = 4404
    AUTH_TIMEOUT = 4408
    TOO_MANY = 4429
    NOT_CONFIGURED = 4503


class _Close(Exception):
    """End the session with a close code and a reason the client can show."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class RateLimit:
    """A token bucket: `rate` per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._at = burst, time.monotonic()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass
class ConsoleGate:
    """Open sockets per IP (counted from connect) and per server (counted once authenticated)."""

    per_ip: int
    per_server: int
    ips: Counter[str] = field(default_factory=Counter)
    servers: Counter[str] = field(default_factory=Counter)

    def enter_ip(self, ip: str) -> bool:
        """Count a new socket from `ip`; False (not counted) when the IP is at its cap."""
        if self.ips[ip] >= self.per_ip:
            return False
        self.ips[ip] += 1
        return True

    def enter_server(self, server_id: str) -> bool:
        """Count an authenticated socket on `server_id`; False when the server is full."""
        if self.servers[server_id] >= self.per_server:
            return False
        self.servers[server_id] += 1
        return True

    @staticmethod
    def leave(counter: Counter[str], key: str) -> None:
        """Uncount one socket."""
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]


class ConsoleEndpoint:
    """Shared state of every console socket of one daemon: key, limits, gate, audit."""

    def __init__(self, agent: Agent, public_key: Ed25519PublicKey | None = None) -> None:
        self.agent = agent
        self.settings = agent.settings
        self._public_key = public_key
        self.gate = ConsoleGate(
            per_ip=self.settings.console_max_sockets_per_ip,
            per_server=self.settings.console_max_sockets_per_server,
        )
        self.origins = {_origin(url) for url in self.settings.console_allowed_origins}
        if self.settings.panel_url:
            self.origins.add(_origin(self.settings.panel_url))

    def use_public_key(self, key: Ed25519PublicKey) -> None:
        """Verify tokens with `key` (the embedded panel hands its key over without a file)."""
        self._public_key = key

    def public_key(self) -> Ed25519PublicKey:
        """The panel's key (loaded from `panel_public_key_file` on first use)."""
        if self._public_key is None:
            path = self.settings.panel_public_key_file
            if path is None:
                raise _Close(CloseCode.NOT_CONFIGURED, "this node has no panel key: register it")
            try:
                self._public_key = read_public_key(path)
            except TokenError as exc:
                log.error("console.no_panel_key", error=str(exc))
                raise _Close(CloseCode.NOT_CONFIGURED, "this node's panel key is unusable") from exc
        return self._public_key

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers must come from the panel; clients without an Origin header may connect."""
        return origin is None or not self.origins or _origin(origin) in self.origins

    def verify(self, token: str, server_id: str) -> ConsoleClaims:
        """The claims of a console token for this node and server; _Close when refused."""
        node_id = self.agent.node_id
        if node_id is None:
            raise _Close(CloseCode.NOT_CONFIGURED, "this node is not registered")
        try:
            return verify_console(token, self.public_key(), audience=node_id, server_id=server_id)
        except TokenExpiredError as exc:
            raise _Close(CloseCode.TOKEN_EXPIRED, str(exc)) from exc
        except TokenError as exc:
            raise _Close(CloseCode.AUTH_FAILED, str(exc)) from exc

    def managed(self, server_id: str) -> ServerManager | None:
        """The server manager when it deployed `server_id` (power then goes through it)."""
        try:
            manager = self.agent.servers
        except RuntimeError:  # not started for a registered node
            return None
        return manager if manager.entry(server_id).spec is not None else None

    async def audit(self, server_id: str, action: str, data: dict[str, Any]) -> None:
        """Publish `console.<action>` to this node's event stream (the panel's audit log)."""
        node_id = self.agent.node_id
        if node_id is None:
            return
        event = Event(type=f"console.{action}", node_id=node_id, server_id=server_id, data=data)
        try:
            await self.agent.broker.append(
                keys.node_events_stream(node_id), event.to_fields(), maxlen=keys.EVENTS_MAXLEN
            )
        except BrokerError as exc:
            log.warning("console.audit_failed", action=action, error=str(exc))


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class ConsoleSession:
    """One socket from accept to close."""

    def __init__(self, endpoint: ConsoleEndpoint, socket: WebSocket, server_id: str) -> None:
        self.endpoint = endpoint
        self.settings = endpoint.settings
        self.socket = socket
        self.server_id = server_id
        self.ip = socket.client.host if socket.client else "unknown"
        self.user_agent = socket.headers.get("user-agent", "")[:256]
        self.claims: ConsoleClaims | None = None
        self._send_lock = asyncio.Lock()
        self._messages = RateLimit(
            self.settings.console_messages_per_second, self.settings.console_messages_per_second * 2
        )
        self._commands = RateLimit(
            self.settings.console_commands_per_second, self.settings.console_commands_per_second
        )
        self._dropped = 0
        self._expiry: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, event: Outbound, *args: object) -> None:
        """Send one event now (frames go through the viewer's outbox instead)."""
        await self.send_text(encode_frame(event, *args))

    async def send_text(self, text: str) -> None:
        """Send JSON text, one writer at a time."""
        async with self._send_lock:
            await self.socket.send_text(text)

    async def run(self) -> None:
        """Authenticate, join the console, then serve messages until either side closes."""
        await self.socket.accept()
        try:
            claims = await self._first_auth()
            console = self.endpoint.agent.consoles.get(self.server_id)
            if console is None:
                raise _Close(CloseCode.UNKNOWN_SERVER, "this server is not on this node")
            if not self.endpoint.gate.enter_server(self.server_id):
                raise _Close(CloseCode.TOO_MANY, "too many consoles are open for this server")
            try:
                await self._serve(console, claims)
            finally:
                self.endpoint.gate.leave(self.endpoint.gate.servers, self.server_id)
        except _Close as close:
            with contextlib.suppress(Exception):
                await self.send(Outbound.DAEMON_ERROR, close.reason)
                await self.socket.close(close.code, close.reason[:120])
        except WebSocketDisconnect:
            pass

    async def _first_auth(self) -> ConsoleClaims:
        header = self.socket.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self._authenticate(token.strip())
        try:
            async with asyncio.timeout(self.settings.console_auth_timeout):
                event, args = await self._receive()
        except TimeoutError:
            raise _Close(CloseCode.AUTH_TIMEOUT, "authenticate within the time limit") from None
        if event != Inbound.AUTH:
            raise _Close(CloseCode.AUTH_FAILED, "the first message must be auth")
        return self._authenticate(_text_arg(args))

    def _authenticate(self, token: str) -> ConsoleClaims:
        claims = self.endpoint.verify(token, self.server_id)
        if not claims.permissions.can_read:
            raise _Close(CloseCode.AUTH_FAILED, "this token may not read the console")
        self.claims = claims
        return claims

    async def _serve(self, console: ServerConsole, claims: ConsoleClaims) -> None:
        started = time.monotonic()
        await self.send(Outbound.AUTH_SUCCESS, _permissions(claims))
        viewer = console.join()
        sender = asyncio.create_task(self._pump_out(viewer), name="console:send")
        self._arm_expiry(claims)
        await self.endpoint.audit(self.server_id, "session_start", self._who())
        try:
            while True:
                event, args = await self._receive()
                await self._dispatch(console, viewer, event, args)
        finally:
            console.leave(viewer)
            for task in (sender, self._expiry, *self._tasks):
                if task is not None:
                    task.cancel()
            duration = round(time.monotonic() - started, 3)
            await self.endpoint.audit(
                self.server_id, "session_end", {**self._who(), "duration": duration}
            )

    async def _pump_out(self, viewer: Viewer) -> None:
        with contextlib.suppress(ViewerClosed, WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await self.send_text(await viewer.next())

    async def _receive(self) -> tuple[str, list[Any]]:
        """The next message as (event, args); _Close when it is too big or a flood."""
        while True:
            message = await self.socket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            text = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                text = raw.decode("utf-8", "replace") if len(raw) else ""
            if len(text) > self.settings.console_max_message_bytes:
                raise _Close(CloseCode.TOO_BIG, "message too big")
            if not self._messages.allow():
                self._dropped += 1
                if self._dropped >= FLOOD_DROPS:
                    raise _Close(CloseCode.TOO_MANY, "too many messages: connection closed")
                continue
            parsed = _parse(text)
            if isinstance(parsed, str):
                await self.send(Outbound.DAEMON_ERROR, parsed)
                continue
            return parsed

    async def _dispatch(
        self, console: ServerConsole, viewer: Viewer, event: str, args: list[Any]
    ) -> None:
        claims = self._current()
        if event == Inbound.AUTH:
            await self._reauth(_text_arg(args), claims)
        elif event == Inbound.SEND_COMMAND:
            await self._command(claims, _text_arg(args))
        elif event == Inbound.SET_STATE:
            self._power(console, claims, _text_arg(args))
        elif event == Inbound.SEND_LOGS:
            console.replay_to(viewer)
        elif event == Inbound.SEND_STATS:
            self._spawn(self._stats(viewer))
        else:
            await self.send(Outbound.DAEMON_ERROR, f"unknown event {event[:64]!r}")

    async def _reauth(self, token: str, current: ConsoleClaims) -> None:
        try:
            claims = self.endpoint.verify(token, self.server_id)
        except _Close as refused:
            await self.send(Outbound.DAEMON_ERROR, f"re-authentication refused: {refused.reason}")
            return
        if claims.sub != current.sub:
            await self.send(Outbound.DAEMON_ERROR, "re-authentication must be by the same user")
            return
        self.claims = claims
        self._arm_expiry(claims)
        await self.send(Outbound.AUTH_SUCCESS, _permissions(claims))

    async def _command(self, claims: ConsoleClaims, text: str) -> None:
        if not claims.permissions.can_write:
            await self.send(Outbound.DAEMON_ERROR, "you may watch this console but not send to it")
            return
        command = text.removesuffix("\n").removesuffix("\r")
        if not command or len(command) > MAX_COMMAND_CHARS or any(c in command for c in "\r\n\0"):
            await self.send(Outbound.DAEMON_ERROR, "a command is one line of 1-4096 characters")
            return
        if not self._commands.allow():
            rate = self.settings.console_commands_per_second
            await self.send(Outbound.DAEMON_ERROR, f"slow down: at most {rate:g} commands/s")
            return
        try:
            await self.endpoint.agent.runtime.send_input(self.server_id, command + "\n")
        except ContainerRuntimeError as exc:
            await self.send(Outbound.DAEMON_ERROR, f"the server did not take the command: {exc}")
            return
        await self.endpoint.audit(
            self.server_id, "command_sent", {**self._who(), "command": command}
        )

    def _power(self, console: ServerConsole, claims: ConsoleClaims, action: str) -> None:
        if action not in POWER_ACTIONS:
            reason = "set state takes start, stop, restart or kill"
            self._spawn(self.send(Outbound.DAEMON_ERROR, reason))
        elif action not in claims.permissions.power:
            self._spawn(self.send(Outbound.DAEMON_ERROR, f"you may not {action} this server"))
        else:
            self._spawn(self._run_power(console, action))

    async def _run_power(self, console: ServerConsole, action: PowerAction) -> None:
        try:
            manager = self.endpoint.managed(self.server_id)
            if manager is not None:  # a deployed server: its lifecycle reports to the panel
                await manager.power(self.server_id, action)
            else:
                await console.power(action)
        except (ContainerRuntimeError, CommandFailedError) as exc:
            await self.send(Outbound.DAEMON_ERROR, f"{action} failed: {exc}")
        else:
            await self.endpoint.audit(self.server_id, "power", {**self._who(), "action": action})

    async def _stats(self, viewer: Viewer) -> None:
        try:
            stats = await self.endpoint.agent.runtime.stats(self.server_id)
        except ContainerRuntimeError as exc:
            viewer.offer(encode_frame(Outbound.DAEMON_ERROR, f"no stats: {exc}"))
            return
        viewer.offer(
            encode_frame(
                Outbound.STATS,
                {
                    "cpu": stats.cpu_percent,
                    "memory": stats.memory_bytes,
                    "memoryLimit": stats.memory_limit_bytes,
                    "networkRx": stats.network_rx_bytes,
                    "networkTx": stats.network_tx_bytes,
                    "pids": stats.pids,
                },
            )
        )

    def _arm_expiry(self, claims: ConsoleClaims) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.create_task(self._expire(claims.exp), name="console:expiry")

    async def _expire(self, exp: int) -> None:
        await asyncio.sleep(max(0.0, exp - EXPIRY_WARNING - time.time()))
        await self.send(Outbound.TOKEN_EXPIRING, exp)
        await asyncio.sleep(max(0.0, exp - time.time()))
        await self.send(Outbound.TOKEN_EXPIRED)
        await self.socket.close(CloseCode.TOKEN_EXPIRED, "token expired")

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _current(self) -> ConsoleClaims:
        if self.claims is None:  # pragma: no cover - _first_auth sets it before _serve
            raise _Close(CloseCode.AUTH_FAILED, "not authenticated")
        return self.claims

    def _who(self) -> dict[str, Any]:
        claims = self._current()
        return {
            "userId": claims.sub,
            "username": claims.metadata.username,
            "ip": self.ip,
            "userAgent": self.user_agent,
            "tokenId": claims.jti,
        }


def _permissions(claims: ConsoleClaims) -> dict[str, Any]:
    return claims.permissions.to_wire()


def _text_arg(args: list[Any]) -> str:
    return args[0] if args and isinstance(args[0], str) else ""


def _parse(text: str) -> tuple[str, list[Any]] | str:
    """(event, args) of a client message, or the reason it is not one."""
    try:
        message = json.loads(text)
    except ValueError:
        return 'messages must be JSON: {"event": …, "args": […]}'
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        return 'messages must be JSON objects with an "event" string'
    args = message.get("args", [])
    if not isinstance(args, list):
        return '"args" must be a list'
    return message["event"], args


def mount_console(
    app: FastAPI, agent: Agent, *, public_key: Ed25519PublicKey | None = None
) -> ConsoleEndpoint:
    """Add `/api/servers/{server_id}/ws` to the daemon app."""
    endpoint = ConsoleEndpoint(agent, public_key)
    app.state.console = endpoint

    @app.websocket("/api/servers/{server_id}/ws")
    async def console_socket(websocket: WebSocket, server_id: str) -> None:
        """The console of one server (see docs/console-protocol.md)."""
        if not endpoint.origin_allowed(websocket.headers.get("origin")):
            log.warning("console.origin_refused", origin=websocket.headers.get("origin"))
            await websocket.close(1008)
            return
        ip = websocket.client.host if websocket.client else "unknown"
        if not endpoint.gate.enter_ip(ip):
            await websocket.close(1008)
            return
        try:
            await ConsoleSession(endpoint, websocket, server_id).run()
        finally:
            endpoint.gate.leave(endpoint.gate.ips, ip)

    return endpoint
