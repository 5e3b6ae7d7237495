"""The console WebSocket against a real daemon (uvicorn on loopback) and real Docker containers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection, connect

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.agent import Agent
from stellarstack.daemon.app import create_app
from stellarstack.daemon.console_ws import ConsoleEndpoint
from stellarstack.daemon.runtime import ContainerSpec, DockerRuntime
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event
from stellarstack.protocol.tokens import ConsoleClaims, generate_signing_key, sign
from stellarstack.settings import DaemonSettings
from tests.daemon.waiting import events_until
from tests.support.services import DockerEngine, free_port

NODE_ID = "node-a"
PANEL_URL = "http://panel.test:8080"
PANEL_KEY = generate_signing_key()

ECHO_SCRIPT = (
    'i=0; while [ $i -lt 200 ]; do echo "boot line $i"; i=$((i+1)); done; '
    "printf '\\033[32mgreen\\033[0m <b>bold</b>\\n'; "
    'while read line; do echo "got:$line"; done'
)


class ConsoleDaemon:
    """A real daemon app (agent, hub, console socket) served by uvicorn on a loopback port."""

    def __init__(self, agent: Agent, port: int, engine: DockerEngine) -> None:
        self.agent = agent
        self.port = port
        self.engine = engine

    @property
    def broker(self) -> MemoryBroker:
        """The in-process broker the agent publishes events on."""
        broker = self.agent.broker
        assert isinstance(broker, MemoryBroker)
        return broker

    def token(self, server_id: str, *, key: Any = PANEL_KEY, **claims: Any) -> str:
        """A console token the panel would sign for `server_id` on this node."""
        values: dict[str, Any] = {
            "node_id": NODE_ID,
            "server_id": server_id,
            "user_id": "u-1",
            "can_write": True,
            "username": "alice",
            "ip": "127.0.0.1",
        }
        values.update(claims)
        return sign(ConsoleClaims.issue(**values), key)

    def url(self, server_id: str) -> str:
        """The console socket of a server."""
        return f"ws://127.0.0.1:{self.port}/api/servers/{server_id}/ws"

    async def server(self, script: str = ECHO_SCRIPT) -> str:
        """Create, register (console attached) and start a busybox server; its id."""
        server_id = f"t-{uuid.uuid4().hex[:12]}"
        runtime = self.agent.runtime
        spec = ContainerSpec(
            server_id=server_id, image=self.engine.image, command=("sh", "-c", script)
        )
        await runtime.create(spec)
        console = await self.agent.consoles.register(server_id)
        await console.power("start")
        return server_id

    @contextlib.asynccontextmanager
    async def viewer(
        self, server_id: str, token: str | None = None, **options: Any
    ) -> AsyncIterator[Viewer]:
        """An authenticated browser-style viewer (first-message auth, the panel's Origin)."""
        options.setdefault("origin", PANEL_URL)
        async with connect(self.url(server_id), **options) as socket:
            viewer = Viewer(socket)
            await viewer.send("auth", token or self.token(server_id))
            auth = await viewer.expect("auth success")
            viewer.permissions = auth[0]
            yield viewer


class Viewer:
    """A client socket that keeps every event it read, in order."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[tuple[str, list[Any]]] = []
        self.permissions: dict[str, Any] = {}

    async def send(self, event: str, *args: Any) -> None:
        """Send one envelope."""
        await self.socket.send(json.dumps({"event": event, "args": list(args)}))

    async def read(self) -> tuple[str, list[Any]]:
        """The next event."""
        message = json.loads(await self.socket.recv())
        event = (message["event"], message["args"])
        self.events.append(event)
        return event

    async def expect(self, name: str, seconds: float = 10.0) -> list[Any]:
        """Read until an event named `name`; its args."""
        async with asyncio.timeout(seconds):
            while True:
                event, args = await self.read()
                if event == name:
                    return args

    async def lines_until(self, text: str, seconds: float = 15.0) -> list[str]:
        """Console lines read until one equals `text` (included)."""
        seen: list[str] = []
        async with asyncio.timeout(seconds):
            while True:
                event, args = await self.read()
                if event == "console output":
                    seen += args
                    if text in args:
                        return seen

    def lines(self) -> list[str]:
        """Every console line read so far."""
        return [line for event, args in self.events if event == "console output" for line in args]


@contextlib.asynccontextmanager
async def console_daemon(
    engine: DockerEngine, tmp_path: Path, **settings: Any
) -> AsyncIterator[ConsoleDaemon]:
    """Run a daemon with the Docker runtime and the console socket on a free port."""
    port = free_port()
    config = DaemonSettings(
        data_dir=tmp_path / f"daemon-{port}",
        node_id=NODE_ID,
        panel_url=PANEL_URL,
        runtime="docker",
        heartbeat_interval=3600,
        **settings,
    )
    runtime = DockerRuntime(engine.host, node_id=f"console-{uuid.uuid4().hex[:8]}")
    agent = Agent(config, MemoryBroker(), runtime=runtime)
    await agent.start()
    app = create_app(agent)
    app.state.console.use_public_key(PANEL_KEY.public_key())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield ConsoleDaemon(agent, port, engine)
    finally:
        server.should_exit = True
        await asyncio.wait({serving}, timeout=10)
        await agent.stop()
        for state in await runtime.list_managed():
            await runtime.remove(state.server_id)
        await runtime.close()


@pytest.fixture(scope="module")
async def daemon(
    docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ConsoleDaemon]:
    """One daemon for the tests that keep the default limits."""
    async with console_daemon(docker_engine, tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
async def echo_server(daemon: ConsoleDaemon) -> str:
    """A running server that printed 200 boot lines and echoes its stdin."""
    server_id = await daemon.server()
    async with daemon.viewer(server_id) as viewer:
        await viewer.lines_until("boot line 199")
    return server_id


async def closed_with(socket: ClientConnection, seconds: float = 10.0) -> tuple[int, list[str]]:
    """Read until the server closes; (close code, daemon errors seen)."""
    errors: list[str] = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await socket.recv())
                if message["event"] == "daemon error":
                    errors.append(message["args"][0])
    assert socket.close_code is not None
    return socket.close_code, errors


# ------------------------------------------------------------------ output, replay, commands


async def test_history_replays_the_last_150_lines_on_connect(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        status = await viewer.expect("status")
        replay = await viewer.expect("console output")
    assert status == ["running"]
    assert len(replay) == 150
    assert replay[0] == "boot line 51" and replay[-2] == "boot line 199"


async def test_ansi_colours_and_html_pass_through_untouched(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        replay = await viewer.expect("console output")
    assert replay[-1] == "\x1b[32mgreen\x1b[0m <b>bold</b>"


async def test_commands_echo_to_every_viewer_of_the_server(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as writer, daemon.viewer(echo_server) as watcher:
        await writer.send("send command", "say <script>alert(1)</script>")
        assert "got:say <script>alert(1)</script>" in await writer.lines_until(
            "got:say <script>alert(1)</script>"
        )
        await watcher.lines_until("got:say <script>alert(1)</script>")


async def test_a_read_only_token_cannot_send_commands(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    token = daemon.token(echo_server, can_write=False)
    async with daemon.viewer(echo_server, token) as reader, daemon.viewer(echo_server) as writer:
        assert reader.permissions["canWrite"] is False
        await reader.send("send command", "read-only attempt")
        assert "not send" in (await reader.expect("daemon error"))[0]
        await writer.send("send command", "marker-after")
        seen = await writer.lines_until("got:marker-after")
    assert "got:read-only attempt" not in seen


async def test_a_viewer_of_another_server_sees_nothing(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    other = await daemon.server("echo other-ready; while read line; do echo other:$line; done")
    async with daemon.viewer(other) as outsider, daemon.viewer(echo_server) as insider:
        await outsider.lines_until("other-ready")
        await insider.send("send command", "secret-42")
        await insider.lines_until("got:secret-42")
        await asyncio.sleep(0.2)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                while True:
                    await outsider.read()
    assert not any("secret-42" in line for line in outsider.lines())
    assert not any("boot line" in line for line in outsider.lines())


async def test_a_token_for_one_server_does_not_open_another(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    other = await daemon.server("sleep 600")
    async with connect(daemon.url(other)) as socket:
        await socket.send(json.dumps({"event": "auth", "args": [daemon.token(echo_server)]}))
        code, errors = await closed_with(socket)
    assert code == 4401 and "another server" in errors[0]


async def test_non_browser_clients_authenticate_with_a_bearer_header(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    headers = {"Authorization": f"Bearer {daemon.token(echo_server)}"}
    async with connect(daemon.url(echo_server), additional_headers=headers) as socket:
        viewer = Viewer(socket)
        await viewer.expect("auth success")
        await viewer.send("send command", "via-bearer")
        await viewer.lines_until("got:via-bearer")


# ------------------------------------------------------------------ forged tokens


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forgeries(daemon: ConsoleDaemon, server_id: str) -> dict[str, tuple[str, int, str]]:
    good = daemon.token(server_id, can_write=False)
    header, _, signature = good.split(".")
    claims = ConsoleClaims.issue(node_id=NODE_ID, server_id=server_id, user_id="u-1")
    tampered = {**claims.to_wire(), "permissions": {"canRead": True, "canWrite": True}}
    return {
        "another key": (daemon.token(server_id, key=generate_signing_key()), 4401, "signature"),
        "another node": (daemon.token(server_id, node_id="node-b"), 4401, "another node"),
        "expired": (daemon.token(server_id, at=time.time() - 900), 4001, "expired"),
        "another server": (daemon.token("t-elsewhere"), 4401, "another server"),
        "alg none": (f"{_b64({'alg': 'none'})}.{_b64(claims.to_wire())}.", 4401, "refused"),
        "tampered": (f"{header}.{_b64(tampered)}.{signature}", 4401, "signature"),
        "garbage": ("<script>", 4401, "not a JWT"),
    }


@pytest.mark.parametrize(
    "forgery",
    ["another key", "another node", "expired", "another server", "alg none", "tampered", "garbage"],
)
async def test_forged_console_tokens_are_refused(
    daemon: ConsoleDaemon, echo_server: str, forgery: str
) -> None:
    token, code, reason = _forgeries(daemon, echo_server)[forgery]
    async with connect(daemon.url(echo_server)) as socket:
        await socket.send(json.dumps({"event": "auth", "args": [token]}))
        closed, errors = await closed_with(socket)
    assert closed == code
    assert reason in errors[0]


async def test_a_console_token_reused_as_an_upload_token_is_refused(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    from stellarstack.protocol.tokens import TokenError, TokenPurpose, verify

    token = daemon.token(echo_server)
    with pytest.raises(TokenError, match="not a upload token"):
        verify(
            token,
            PANEL_KEY.public_key(),
            audience=NODE_ID,
            purpose=TokenPurpose.UPLOAD,
            server_id=echo_server,
        )


# ------------------------------------------------------------------ session lifecycle


async def test_the_first_message_must_be_auth(daemon: ConsoleDaemon, echo_server: str) -> None:
    async with connect(daemon.url(echo_server)) as socket:
        await socket.send(json.dumps({"event": "send command", "args": ["stop"]}))
        code, errors = await closed_with(socket)
    assert code == 4401 and "first message must be auth" in errors[0]


async def test_a_socket_that_never_authenticates_is_closed_at_the_deadline(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    async with console_daemon(docker_engine, tmp_path, console_auth_timeout=0.3) as running:
        server_id = await running.server("sleep 600")
        async with connect(running.url(server_id)) as socket:
            code, errors = await closed_with(socket)
    assert code == 4408 and "authenticate" in errors[0]


async def test_browsers_from_another_origin_are_refused(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(daemon.url(echo_server), origin="http://evil.test"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with daemon.viewer(echo_server, origin="HTTP://PANEL.TEST:8080") as viewer:
        assert viewer.permissions["canRead"] is True


async def test_the_token_expiring_warning_comes_and_reauth_on_the_same_socket_refreshes(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    short = daemon.token(echo_server, ttl=2)
    async with daemon.viewer(echo_server, short) as viewer:
        await viewer.expect("token expiring")
        await viewer.send("auth", daemon.token(echo_server, user_id="u-2"))
        assert "same user" in (await viewer.expect("daemon error"))[0]
        await viewer.send("auth", daemon.token(echo_server, ttl=300))
        await viewer.expect("auth success")
        await asyncio.sleep(2.5)
        await viewer.send("send command", "still-here")
        await viewer.lines_until("got:still-here")
    assert not any(event == "token expired" for event, _ in viewer.events)


async def test_an_expired_session_is_told_and_closed(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server, daemon.token(echo_server, ttl=1)) as viewer:
        await viewer.expect("token expired", seconds=5)
        with pytest.raises(websockets.ConnectionClosed):
            await viewer.expect("never", seconds=5)
        assert viewer.socket.close_code == 4001


async def test_audit_events_reach_the_node_event_stream(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    stream = keys.node_events_stream(NODE_ID)
    headers = {"User-Agent": "AuditBrowser/1.0"}
    async with daemon.viewer(echo_server, additional_headers=headers) as viewer:
        await viewer.send("send command", "audited <i>cmd</i>")
        await viewer.lines_until("got:audited <i>cmd</i>")

    def ended(events: list[Event]) -> bool:
        return any(
            e.type == "console.session_end" and e.data.get("userAgent") == "AuditBrowser/1.0"
            for e in events
        )

    events = await events_until(daemon.broker, stream, ended)
    mine = [e for e in events if e.data.get("userAgent") == "AuditBrowser/1.0"]
    assert [e.type for e in mine] == [
        "console.session_start",
        "console.command_sent",
        "console.session_end",
    ]
    start, command, end = mine
    assert all(e.server_id == echo_server and e.node_id == NODE_ID for e in mine)
    assert command.data["command"] == "audited <i>cmd</i>"
    assert command.data["userId"] == "u-1" and command.data["username"] == "alice"
    assert command.data["ip"] == "127.0.0.1"
    assert end.data["duration"] > 0
    assert start.data["tokenId"] == end.data["tokenId"]


# ------------------------------------------------------------------ permissions and requests


async def test_power_actions_need_the_matching_permission(daemon: ConsoleDaemon) -> None:
    server_id = await daemon.server("echo run-started; exec sleep 600")
    async with daemon.viewer(server_id, daemon.token(server_id, power=("start",))) as viewer:
        await viewer.send("set state", "kill")
        assert "may not kill" in (await viewer.expect("daemon error"))[0]
        await viewer.send("set state", "explode")
        assert "start, stop, restart or kill" in (await viewer.expect("daemon error"))[0]
    assert (await daemon.agent.runtime.status(server_id)).running
    token = daemon.token(server_id, power=("restart", "kill"))
    async with daemon.viewer(server_id, token) as viewer:
        await viewer.lines_until("run-started")  # the replay
        await viewer.send("set state", "restart")
        assert await viewer.expect("status") == ["stopping"]
        await viewer.lines_until("run-started")  # the new run's first line, not lost
        restarting = viewer.events.index(("status", ["stopping"]))
        while ("status", ["running"]) not in viewer.events[restarting:]:
            await viewer.expect("status")
        await viewer.send("set state", "kill")
        final = (await viewer.expect("status"))[0]
        assert final in ("stopped", "crashed"), [e for e in viewer.events if e[0] == "status"]


async def test_send_logs_replays_and_send_stats_answers(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        await viewer.expect("console output")
        await viewer.send("send logs")
        again = await viewer.expect("console output")
        await viewer.send("send stats")
        stats = (await viewer.expect("stats"))[0]
    assert len(again) == 150
    assert stats["memory"] > 0 and stats["pids"] >= 1


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "must be JSON"),
        ("[1, 2]", "JSON objects"),
        ('{"event": "send command", "args": "x"}', "must be a list"),
        ('{"event": "shutdown everything"}', "unknown event"),
        ('{"event": "send command", "args": ["a\\nstop"]}', "one line"),
        ('{"event": "send command", "args": [""]}', "one line"),
        ('{"event": "send command", "args": [42]}', "one line"),
    ],
)
async def test_malformed_messages_get_a_daemon_error_and_the_socket_stays(
    daemon: ConsoleDaemon, echo_server: str, message: str, reason: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        await viewer.socket.send(message)
        assert reason in (await viewer.expect("daemon error"))[0]
        await viewer.send("send command", "after-bad")
        seen = await viewer.lines_until("got:after-bad")
    assert "got:stop" not in seen


async def test_an_oversized_message_closes_the_socket(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        await viewer.send("send command", "x" * 20_000)
        code, _ = await closed_with(viewer.socket)
    assert code == 1009


async def test_commands_past_the_rate_limit_are_refused(
    daemon: ConsoleDaemon, echo_server: str
) -> None:
    async with daemon.viewer(echo_server) as viewer:
        for n in range(15):
            await viewer.send("send command", f"burst-{n}")
        errors = [
            (await viewer.expect("daemon error"))[0] for _ in range(4)
        ]  # at least the last few
        await asyncio.sleep(1.0)
        await viewer.send("send command", "after-burst")
        seen = await viewer.lines_until("got:after-burst")
    assert all("slow down" in e for e in errors)
    echoed = [line for line in seen + viewer.lines() if line.startswith("got:burst-")]
    assert 8 <= len(set(echoed)) <= 11


async def test_sockets_per_ip_and_per_server_are_capped(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    limits = {"console_max_sockets_per_ip": 3, "console_max_sockets_per_server": 2}
    async with console_daemon(docker_engine, tmp_path, **limits) as running:
        server_id = await running.server("sleep 600")
        async with running.viewer(server_id), running.viewer(server_id):
            async with connect(running.url(server_id)) as third:
                await third.send(json.dumps({"event": "auth", "args": [running.token(server_id)]}))
                code, errors = await closed_with(third)
            assert code == 4429 and "too many consoles" in errors[0]
            async with connect(running.url(server_id)):
                with pytest.raises(websockets.InvalidStatus):
                    async with connect(running.url(server_id)):
                        pass
        async with running.viewer(server_id) as again:  # the counts went back down
            assert again.permissions["canRead"]


async def test_output_past_the_ceiling_is_throttled_with_a_visible_notice(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    script = (
        'while read go; do i=0; while [ $i -lt 3000 ]; do echo "n $i"; i=$((i+1)); done; '
        "echo done; done"
    )
    async with console_daemon(
        docker_engine, tmp_path, console_max_lines_per_second=1000
    ) as running:
        server_id = await running.server(script)
        async with running.viewer(server_id) as viewer:
            await viewer.send("send command", "go")
            notice = await viewer.expect("daemon message")
            lines = viewer.lines()
    assert "output throttled" in notice[0] and "1000 lines/s" in notice[0]
    assert 0 < len(lines) <= 1000
    assert lines == [f"n {i}" for i in range(len(lines))]


async def test_the_panel_key_is_read_from_the_registered_key_file(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    from stellarstack.protocol.tokens import public_key_pem

    key_file = tmp_path / "panel.pub"
    key_file.write_bytes(public_key_pem(PANEL_KEY))
    async with console_daemon(docker_engine, tmp_path, panel_public_key_file=key_file) as running:
        endpoint = ConsoleEndpoint(running.agent)
        claims = endpoint.verify(running.token("t-any"), "t-any")
    assert claims.server_id == "t-any"


async def test_a_node_without_a_panel_key_says_so(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    async with console_daemon(docker_engine, tmp_path) as running:
        endpoint = ConsoleEndpoint(running.agent)
        with pytest.raises(Exception, match="no panel key"):
            endpoint.verify(running.token("t-any"), "t-any")
