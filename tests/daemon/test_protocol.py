"""The wire contract: key names, command and event envelopes, flat stream fields, expiry."""

from __future__ import annotations

import fnmatch
import json

import pytest

from stellarstack.protocol import (
    Command,
    CommandResult,
    CommandStatus,
    CommandType,
    DeploymentProgress,
    Event,
    EventData,
    EventType,
    InvalidIdentifierError,
    MalformedMessageError,
    NodeAlert,
    NodeHealth,
    NodeHeartbeat,
    NodeMetrics,
    ServerCommand,
    ServerLog,
    ServerMetrics,
    ServerPowerPayload,
    ServerStatus,
    ServerStatusChange,
    keys,
)

HOSTILE_IDS = ["a:b", "*", "n1*", "", "a b", "../x", "x\n", "n[1]", "a?", "x" * 200, "-lead", "é"]


def test_key_names_follow_the_spec() -> None:
    assert keys.node_commands_stream("n1") == "stellar:nodes:n1:commands"
    assert keys.node_events_stream("n1") == "stellar:nodes:n1:events"
    assert keys.node_heartbeat_channel("n1") == "stellar:nodes:n1:heartbeat"
    assert keys.server_status_channel("s1") == "stellar:servers:s1:status"
    assert keys.server_metrics_channel("s1") == "stellar:servers:s1:metrics"
    assert keys.server_logs_channel("s1") == "stellar:servers:s1:logs"
    assert keys.server_status_cache_key("s1") == "cache:server:s1:status"
    assert keys.node_metrics_cache_key("n1") == "cache:node:n1:metrics"
    assert keys.GLOBAL_EVENTS_CHANNEL == "stellar:events:global"


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_identifiers_that_would_break_key_names_are_refused(bad: str) -> None:
    for name in (keys.node_commands_stream, keys.node_acl_key_pattern, keys.server_logs_channel):
        with pytest.raises(InvalidIdentifierError):
            name(bad)


def test_a_node_acl_pattern_covers_only_that_nodes_keys() -> None:
    pattern = keys.node_acl_key_pattern("n1")
    assert fnmatch.fnmatchcase(keys.node_commands_stream("n1"), pattern)
    assert fnmatch.fnmatchcase(keys.node_events_stream("n1"), pattern)
    for other in ("n10", "n1-b", "n"):
        assert not fnmatch.fnmatchcase(keys.node_commands_stream(other), pattern)
    assert keys.node_acl_username("n1") == "node-n1"


def test_command_round_trips_through_flat_string_fields() -> None:
    command = Command.create(
        CommandType.SERVER_START, {"serverId": "s1", "nested": {"a": [1, 2]}}, ttl=30, at=1000.5
    )
    fields = command.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert set(fields) == {"id", "type", "payload", "timestamp", "expiresAt"}
    assert json.loads(fields["payload"]) == {"serverId": "s1", "nested": {"a": [1, 2]}}
    decoded = Command.from_fields(fields)
    assert decoded == command
    assert decoded.known_type is CommandType.SERVER_START
    assert decoded.expires_at == 1030.5


def test_command_wire_form_is_camel_case() -> None:
    wire = Command.create("node.ping", ttl=1, at=10).to_wire()
    assert wire["expiresAt"] == 11 and "expires_at" not in wire


def test_command_types_cover_the_spec() -> None:
    spec = {
        "server.create", "server.start", "server.stop", "server.restart", "server.kill",
        "server.delete", "server.reinstall", "files.read", "files.write", "files.delete",
        "backup.create", "backup.restore", "node.update", "node.drain", "node.shutdown",
    }  # fmt: skip
    assert spec <= {t.value for t in CommandType}


def test_command_expiry_is_inclusive_of_its_deadline() -> None:
    command = Command.create("node.ping", ttl=5, at=100)
    assert not command.is_expired(104.999)
    assert command.is_expired(105)
    assert command.is_expired(10_000)


def test_unknown_command_type_still_decodes_so_it_can_be_answered() -> None:
    fields = Command.create("future.thing", at=1).to_fields()
    command = Command.from_fields(fields)
    assert command.type == "future.thing" and command.known_type is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": None}, "type"),
        ({"payload": "{not json"}, "not JSON"),
        ({"payload": "[1, 2]"}, "payload"),
        ({"payload": "x" * (1024 * 1024 + 1)}, "larger than 1 MiB"),
        ({"type": "server.start; rm -rf /"}, "type"),
        ({"type": "<script>alert(1)</script>"}, "type"),
        ({"expiresAt": "5"}, "before timestamp"),
        ({"timestamp": "nan"}, "timestamp"),
        ({"expiresAt": "soon"}, "expiresAt"),
        ({"id": "a" * 129}, "id"),
        ({"id": "x y"}, "id"),
    ],
)
def test_malformed_command_fields_are_refused_with_a_reason(
    change: dict[str, str | None], reason: str
) -> None:
    fields = Command.create("server.start", {"serverId": "s1"}, at=100).to_fields()
    for key, value in change.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    with pytest.raises(MalformedMessageError, match=reason):
        Command.from_fields(fields)


def test_power_payload_validates_the_server_id() -> None:
    good = Command.create("server.stop", {"serverId": "s-1", "signal": "SIGINT", "grace": 5})
    assert good.payload_as(ServerPowerPayload) == ServerPowerPayload(
        server_id="s-1", signal="SIGINT", grace=5
    )
    bad_payloads = [{"serverId": "../etc"}, {"serverId": "a:*"}, {}, {"serverId": "s", "grace": -1}]
    for payload in bad_payloads:
        with pytest.raises(MalformedMessageError, match=r"invalid server\.stop payload"):
            Command.create("server.stop", payload).payload_as(ServerPowerPayload)


EVENT_SAMPLES: list[EventData] = [
    ServerStatusChange(status=ServerStatus.CRASHED, exit_code=137),
    ServerMetrics(
        cpu=150.5, memory=1, memory_limit=2, disk=3, network_rx=4, network_tx=5, uptime=6.5
    ),
    ServerLog(stream="stderr", message="<b>not html</b>", timestamp=1.5),
    NodeHeartbeat(
        status=NodeHealth.DEGRADED,
        metrics=NodeMetrics(
            cpu=1, memory=2, disk=3, containers=4, network_rx=5, network_tx=6, memory_total=7
        ),
        runtime="process",
        version="1.0",
    ),
    NodeAlert(severity="critical", message="disk full"),
    ServerCommand(command_id="c1", command="restart", user_id="u1"),
    CommandResult(
        command_id="c1", command_type="server.start", status=CommandStatus.FAILED, error="boom"
    ),
    DeploymentProgress(stage="pull", progress=0.5, message="half"),
]


@pytest.mark.parametrize("data", EVENT_SAMPLES, ids=lambda d: type(d).__name__)
def test_every_event_round_trips_with_its_typed_data(data: EventData) -> None:
    event = Event.create(data, node_id="n1", server_id="s1", at=42.0)
    fields = event.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["nodeId"] == "n1" and fields["serverId"] == "s1"
    decoded = Event.from_fields(fields)
    assert decoded == event
    assert decoded.known_type is data.event_type
    assert decoded.data_as(type(data)) == data


def test_event_data_is_camel_case_on_the_wire() -> None:
    event = Event.create(
        CommandResult(command_id="c", command_type="node.ping", status=CommandStatus.EXPIRED),
        node_id="n1",
    )
    data = json.loads(event.to_fields()["data"])
    assert data["commandId"] == "c" and data["commandType"] == "node.ping"
    assert data["status"] == "expired" and data["replayed"] is False


def test_event_data_of_another_type_is_refused() -> None:
    event = Event.create(NodeAlert(severity="info", message="x"), node_id="n1")
    with pytest.raises(MalformedMessageError, match="does not carry"):
        event.data_as(CommandResult)
    broken = Event(type=EventType.NODE_ALERT, node_id="n1", data={"severity": "apocalyptic"})
    with pytest.raises(MalformedMessageError):
        broken.data_as(NodeAlert)


def test_events_refuse_hostile_node_and_server_ids() -> None:
    alert = NodeAlert(severity="info", message="x")
    with pytest.raises(InvalidIdentifierError):
        Event.create(alert, node_id="n1:*")
    with pytest.raises(InvalidIdentifierError):
        Event.create(alert, node_id="n1", server_id="../s")
