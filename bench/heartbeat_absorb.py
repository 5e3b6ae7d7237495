"""How many nodes' heartbeats one panel process absorbs at a 30 s interval.

DESIGN.md §7: target ≥ 2,000 nodes with CPU to spare. Starts its own redis-server and
PostgreSQL (SQLite if PostgreSQL is missing) and creates N node rows; another process plays
N daemons, each appending a heartbeat every 30 s (spread evenly), while this process runs the
panel's real `EventIngest` (multi-stream readers of <= 500 node streams each, one XREADGROUP
per read, group `panel`, a database transaction per event). Prints the floor (raw XREAD of the
node streams), whether the panel kept up, the CPU share of one core it used doing so, and the
most nodes one core could absorb at that cost per heartbeat.

    .venv/bin/python bench/heartbeat_absorb.py [NODES] [SECONDS]
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import structlog
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.services import start_postgres, start_redis

from stellarstack.broker import RedisBroker
from stellarstack.panel.db import migrate
from stellarstack.panel.db.enums import NodeStatus
from stellarstack.panel.db.models import Node
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.events.consumer import EventIngest
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, NodeHealth, NodeHeartbeat, NodeMetrics

INTERVAL = 30.0
FLOOR = ":floor"
"""Suffix of the streams the floor reads, so the ingest starts with no backlog."""
TARGET = 2000
ingest_chunk = 500
"""Node streams per XREADGROUP (EventIngest's default `streams_per_read`)."""
METRICS = NodeMetrics(
    cpu=23.5, memory=61, disk=40, containers=7, network_rx=1 << 30, network_tx=1 << 29
)


async def create_nodes(database: Database, n: int) -> list[uuid.UUID]:
    """N node rows, online."""
    ids = [uuid.uuid4() for _ in range(n)]
    async with database.sessionmaker() as db:
        db.add_all(
            Node(
                id=node_id,
                name=f"n{i}",
                fqdn="127.0.0.1",
                region="bench",
                api_token_hash=node_id.hex,
                status=NodeStatus.ONLINE,
            )
            for i, node_id in enumerate(ids)
        )
        await db.commit()
    return ids


async def write_heartbeats(url: str, ids: list[uuid.UUID], beats: int, suffix: str) -> None:
    """What N daemons would have appended (to `<events stream><suffix>`): `beats` each."""
    client = Redis.from_url(url, decode_responses=True)
    pipe = client.pipeline(transaction=False)
    for _ in range(beats):
        for node_id in ids:
            beat = NodeHeartbeat(status=NodeHealth.HEALTHY, metrics=METRICS, version="0.1.0")
            event = Event.create(beat, node_id=str(node_id))
            pipe.xadd(keys.node_events_stream(str(node_id)) + suffix, event.to_fields())  # type: ignore[arg-type]
    await pipe.execute()
    await client.aclose()


async def raw_floor(url: str, ids: list[uuid.UUID]) -> float:
    """Seconds to XREAD every entry of every stream once (no decode, no database)."""
    client = Redis.from_url(url, decode_responses=True)
    started = time.perf_counter()
    for chunk in range(0, len(ids), 100):
        streams = {keys.node_events_stream(str(i)) + FLOOR: "0" for i in ids[chunk : chunk + 100]}
        await client.xread(streams, count=1000)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


GENERATOR = """
import asyncio, sys, time
from redis.asyncio import Redis
sys.path.insert(0, {root!r})
from stellarstack.protocol import keys
from stellarstack.protocol.events import Event, NodeHealth, NodeHeartbeat, NodeMetrics
ids, interval, seconds = sys.argv[1].split(","), float(sys.argv[2]), float(sys.argv[3])
metrics = NodeMetrics(cpu=23.5, memory=61, disk=40, containers=7, network_rx=1, network_tx=2)
async def main():
    client = Redis.from_url(sys.argv[4], decode_responses=True)
    start, sent = time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed / interval * len(ids))  # every node once per interval, spread evenly
        pipe = client.pipeline(transaction=False)
        while sent < due:
            node = ids[sent % len(ids)]
            beat = NodeHeartbeat(status=NodeHealth.HEALTHY, metrics=metrics)
            pipe.xadd(keys.node_events_stream(node), Event.create(beat, node_id=node).to_fields())
            sent += 1
        await pipe.execute()
        await asyncio.sleep(0.01)
    print(sent)
asyncio.run(main())
"""


async def steady_state(
    url: str, database: Database, ids: list[uuid.UUID], seconds: float
) -> tuple[int, int, float, float]:
    """Daemons (another process) beat every INTERVAL s; return (sent, applied, wall, CPU s)."""
    broker = RedisBroker(url, max_connections=len(ids) + 100)
    ingest = EventIngest(database, broker, discovery_period=3600)
    ingest.start()
    await ingest.discover()
    await asyncio.sleep(3)  # consumers created and blocking
    root = str(Path(__file__).resolve().parent.parent / "src")
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        GENERATOR.format(root=root),
        ",".join(map(str, ids)),
        str(INTERVAL),
        str(seconds),
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    wall, cpu, applied = time.perf_counter(), time.process_time(), ingest.applied
    out, _ = await generator.communicate()
    sent_count = int(out.decode().strip() or 0)
    for _ in range(30):  # let the last ones land (up to 3 s: a backlog that drains is kept up)
        if ingest.applied - applied >= sent_count:
            break
        await asyncio.sleep(0.1)
    result = (
        sent_count,
        ingest.applied - applied,
        time.perf_counter() - wall,
        time.process_time() - cpu,
    )
    await ingest.stop()
    await broker.close()
    return result


async def main(nodes: int, seconds: float) -> None:
    """Set up, measure, print."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    redis_server, reason = start_redis()
    if redis_server is None:
        raise SystemExit(f"cannot start redis-server: {reason}")
    postgres, _ = start_postgres()
    tmp = Path(tempfile.mkdtemp())
    url = (
        postgres.url(postgres.create_database("bench"))
        if postgres
        else f"sqlite+aiosqlite:///{tmp}/b.db"
    )
    try:
        await migrate.upgrade(url)
        database = Database(url)
        ids = await create_nodes(database, nodes)
        await write_heartbeats(redis_server.url, ids, 1, FLOOR)
        floor = await raw_floor(redis_server.url, ids)
        sent, applied, wall, cpu = await steady_state(redis_server.url, database, ids, seconds)
        await database.dispose()
        engine = "PostgreSQL" if postgres else "SQLite"
        rate = nodes / INTERVAL
        print(
            f"heartbeat absorption: {nodes} nodes beating every {INTERVAL:.0f} s "
            f"({rate:.0f}/s) for {seconds:.0f} s; {engine}, Redis; "
            f"{-(-nodes // ingest_chunk)} multi-stream reader(s) of <= {ingest_chunk} streams"
        )
        print(f"raw XREAD of node streams (floor)   {nodes / floor:9.0f} entries/s")
        print(
            f"heartbeats sent / applied           {sent} / {applied}"
            f"   ({'kept up' if applied >= sent * 0.98 else 'FELL BEHIND'})"
        )
        share = cpu / wall
        print(
            f"panel CPU while absorbing           {share * 100:6.1f} % of one core "
            f"({cpu / max(applied, 1) * 1000:.2f} ms per heartbeat incl. idle consumers)"
        )
        per_beat_s = cpu / max(applied, 1)
        max_nodes = int(INTERVAL / per_beat_s) if applied else 0
        print(
            f"max nodes at a {INTERVAL:.0f} s interval     {max_nodes:9,d} per core "
            f"({max_nodes / nodes:.1f}x this run; CPU used/wall {cpu:.1f} / {wall:.1f} s)"
        )
        kept_up = applied >= sent * 0.98 and share < 0.5
        verdict = "ok" if kept_up and nodes >= TARGET else "UNDER TARGET"
        print(f"target: >= {TARGET:,} nodes with CPU to spare (< 50 % of a core): {verdict}")
    finally:
        redis_server.stop()
        if postgres:
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(args[0] if args else TARGET, args[1] if len(args) > 1 else 20))
