"""One panel on PostgreSQL + Redis (append-only), three daemons on loopback, and their faults.

Each fault test checks that nothing is lost (every command reaches a final state) and
nothing runs twice (each id appears at most once in the daemon's `daemon.command_ran` log,
across its restarts). Tests run in order on one cluster, each leaving it healthy.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest
import redis as redis_sync
from sqlalchemy.engine import make_url

from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import CommandStatus, NodeStatus
from stellarstack.protocol import keys
from tests.integration.cluster import Cluster, DaemonProcess, eventually
from tests.support import services
from tests.support.services import PostgresServer, RedisServer, require

SUCCEEDED = CommandStatus.SUCCEEDED

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@pytest.fixture(scope="module")
def aof_redis() -> Iterator[RedisServer]:
    """A redis-server of our own with append-only persistence, fsync on every write."""
    server, reason = services.start_redis(["--appendonly", "yes", "--appendfsync", "always"])
    if server is None:
        require(False, reason)
    assert server is not None
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer,
    aof_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The panel and three daemons, all started."""
    url = postgres_server.url(postgres_server.create_database("nodes"))
    asyncio.run(migrate.upgrade(url))
    sync_url = (
        make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    )
    instance = Cluster(tmp_path_factory.mktemp("cluster"), sync_url, aof_redis.url)
    instance.start()
    yield instance
    instance.stop()


def all_online(cluster: Cluster) -> bool:
    return all(cluster.node_status(d.node_id) == NodeStatus.ONLINE for d in cluster.daemons)


def assert_ran_at_most_once(daemon: DaemonProcess, ids: list[str]) -> None:
    ran = daemon.ran()
    twice = {i: n for i, n in ran.items() if n > 1}
    assert not twice, f"commands ran more than once: {twice}"


def test_three_daemons_come_online_and_commands_reach_only_their_node(cluster: Cluster) -> None:
    eventually(lambda: all_online(cluster), 20)
    sent = {d.node_id: cluster.ping(d, 5) for d in cluster.daemons}
    every = [i for ids in sent.values() for i in ids]
    eventually(lambda: cluster.all_finished(every, SUCCEEDED), 15)
    for daemon in cluster.daemons:
        ran = daemon.ran()
        assert all(ran[i] == 1 for i in sent[daemon.node_id])
        others = {i for n, ids in sent.items() if n != daemon.node_id for i in ids}
        assert not others & set(ran), "a daemon ran another node's command"


def test_a_caller_can_wait_for_a_command_through_the_api(cluster: Cluster) -> None:
    [command_id] = cluster.ping(cluster.daemons[0])
    body = cluster.api.get(f"/api/v1/commands/{command_id}", params={"wait": 5}).json()["data"]
    assert body["status"] == "succeeded" and body["result"]["pong"] is True


def test_malformed_and_oversized_payloads_get_a_4xx_and_nothing_is_lost(cluster: Cluster) -> None:
    daemon = cluster.daemons[0]
    assert cluster.send(daemon, payload={"x": "y" * 70_000}).status_code == 413
    assert cluster.send(daemon, payload=["not", "an", "object"]).status_code == 422
    assert cluster.send(daemon, "server.start", payload={"serverId": "../../x"}).status_code == 422
    assert cluster.send(daemon, "rm -rf /").status_code == 422
    # A garbage entry written straight into the stream is refused by the daemon, not fatal.
    client = redis_sync.Redis.from_url(cluster.redis_url)
    client.xadd(
        keys.node_commands_stream(str(daemon.node_id)), {"type": "<script>", "payload": "{"}
    )
    client.close()
    ids = cluster.ping(daemon, 3)
    eventually(lambda: cluster.all_finished(ids, SUCCEEDED), 10)
    eventually(lambda: "daemon.command_rejected" in daemon.text(), 5)


def test_a_sigkilled_daemon_gets_every_queued_command_once_after_restart(cluster: Cluster) -> None:
    daemon = cluster.daemons[1]
    in_flight = cluster.ping(daemon, 20)
    daemon.kill()  # SIGKILL, some of those possibly mid-way
    queued = cluster.ping(daemon, 10)
    time.sleep(0.3)
    assert set(cluster.statuses(queued).values()) == {CommandStatus.QUEUED}
    daemon.start()
    eventually(lambda: cluster.all_finished(queued, SUCCEEDED), 20)
    finals = {CommandStatus.SUCCEEDED, CommandStatus.FAILED}
    eventually(lambda: set(cluster.statuses(in_flight).values()) <= finals, 10)
    assert_ran_at_most_once(daemon, in_flight + queued)
    ran = daemon.ran()
    assert all(ran[i] == 1 for i in queued)
    for command_id, status in cluster.statuses(in_flight).items():
        assert ran[command_id] == (1 if status == SUCCEEDED else 0)


def test_queued_commands_survive_a_redis_restart_and_everyone_reconnects(
    cluster: Cluster, aof_redis: RedisServer
) -> None:
    daemon = cluster.daemons[2]
    daemon.signal(signal.SIGTERM)
    assert daemon.proc is not None
    daemon.proc.wait(15)
    queued = cluster.ping(daemon, 5)
    aof_redis.restart()
    restarted = time.monotonic()
    daemon.start()
    other = cluster.daemons[0]

    def reconnected() -> bool:
        """A fresh ping to another node goes all the way round (a 5xx counts as not yet)."""
        response = cluster.send(other)
        if response.status_code != 202:
            return False
        command_id = response.json()["data"]["id"]
        try:
            eventually(lambda: cluster.all_finished([command_id], SUCCEEDED), 2)
        except AssertionError:
            return False
        return True

    eventually(reconnected, 10, every=0.2)
    assert time.monotonic() - restarted < 10
    eventually(lambda: cluster.all_finished(queued, SUCCEEDED), 15)
    assert_ran_at_most_once(daemon, queued)


def test_consumers_resume_after_the_panel_is_killed_mid_stream(cluster: Cluster) -> None:
    targets = cluster.daemons[:2]
    ids = [i for d in targets for i in cluster.ping(d, 15)]
    cluster.panel.kill()  # results keep arriving in the event streams while it is down
    time.sleep(1)
    cluster.panel.start()
    cluster.panel.wait_healthy()
    more = [i for d in targets for i in cluster.ping(d, 5)]
    eventually(lambda: cluster.all_finished(ids + more, SUCCEEDED), 20)
    for daemon in targets:
        assert_ran_at_most_once(daemon, ids + more)


def test_a_silent_node_walks_online_unhealthy_offline_and_back(cluster: Cluster) -> None:
    eventually(lambda: all_online(cluster), 20)
    daemon = cluster.daemons[1]
    client = redis_sync.Redis.from_url(cluster.redis_url, decode_responses=True)
    watch = client.pubsub()  # type: ignore[no-untyped-call]
    watch.subscribe(keys.GLOBAL_EVENTS_CHANNEL)
    try:
        daemon.signal(signal.SIGSTOP)
        seen = [cluster.node_status(daemon.node_id)]

        def walked(target: NodeStatus) -> bool:
            status = cluster.node_status(daemon.node_id)
            if status != seen[-1]:
                seen.append(status)
            return status == target

        eventually(lambda: walked(NodeStatus.OFFLINE), 15, every=0.02)
        daemon.signal(signal.SIGCONT)
        eventually(lambda: walked(NodeStatus.ONLINE), 10, every=0.02)
        assert seen == [
            NodeStatus.ONLINE,
            NodeStatus.UNHEALTHY,
            NodeStatus.OFFLINE,
            NodeStatus.ONLINE,
        ]
        announced = []
        while (message := watch.get_message(timeout=0.5)) is not None:
            if message["type"] == "message" and str(daemon.node_id) in message["data"]:
                announced.append(message["data"].split('"status":"')[1].split('"')[0])
        assert announced == ["unhealthy", "offline", "online"]
    finally:
        daemon.signal(signal.SIGCONT)
        watch.close()
        client.close()


def test_an_unreachable_daemon_answers_503_fast_once_its_breaker_opens(cluster: Cluster) -> None:
    daemon = cluster.daemons[0]
    ok = cluster.api.get(f"/api/v1/nodes/{daemon.node_id}/health")
    assert ok.status_code == 200 and ok.json()["data"]["status"] == "healthy"
    daemon.signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        slow = [cluster.api.get(f"/api/v1/nodes/{daemon.node_id}/health") for _ in range(3)]
        assert [r.status_code for r in slow] == [503, 503, 503]
        started = time.monotonic()
        fast = cluster.api.get(f"/api/v1/nodes/{daemon.node_id}/health")
        assert fast.status_code == 503 and "Retry-After" in fast.headers
        assert time.monotonic() - started < 0.5
    finally:
        daemon.signal(signal.SIGCONT)
