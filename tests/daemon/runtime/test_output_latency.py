"""Live output is event-driven and travels in chunks: the supervisor's bell, batch readers.

Timings live in bench/console_throughput.py; these tests pin the mechanisms behind them:
the bell rings on output and at exit, a runtime without a bell still follows by polling,
readers take every queued line in one step and lose nothing to a flood they keep up with.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

from stellarstack.daemon.console import ConsoleHub, ConsoleLimits
from stellarstack.daemon.runtime import ContainerSpec, DockerRuntime, ProcessRuntime
from stellarstack.daemon.runtime.output import LineSplitter, next_lines
from stellarstack.daemon.runtime.process_files import OutputBell, ServerFiles
from stellarstack.daemon.runtime.subscribers import QueueOutput, Subscribers
from tests.daemon.waiting import collect_until
from tests.support.services import DockerEngine

ECHO_LOOP = "echo ready; while read line; do echo got:$line; done"


def shell(server_id: str, directory: Path, script: str) -> ContainerSpec:
    """A spec running `script` with /bin/sh in `directory`."""
    return ContainerSpec(server_id=server_id, command=("sh", "-c", script), volume_dir=directory)


async def read_all(output: QueueOutput, seconds: float = 30.0) -> tuple[list[str], int]:
    """Every line to the end of the output, read in batches, and how many batches it took."""
    lines: list[str] = []
    batches = 0
    async with asyncio.timeout(seconds):
        while batch := await output.next_lines():
            lines += batch
            batches += 1
    return lines, batches


async def collect_log(files: ServerFiles, wanted: bytes) -> None:
    """Wait until the server's log holds `wanted`."""
    async with asyncio.timeout(10):
        while wanted not in files.log.read_bytes():
            await asyncio.sleep(0.01)


async def test_the_bell_rings_when_the_server_prints_and_falls_silent_when_it_exits(
    tmp_path: Path, server_id: str, server_dir: Path
) -> None:
    runtime = ProcessRuntime(state_dir=tmp_path / "state", close_grace=2.0)
    await runtime.create(shell(server_id, server_dir, ECHO_LOOP))
    await runtime.start(server_id)
    await runtime.close()  # the server runs on; the bell now has one reader: this test
    files = ServerFiles(runtime.state_dir / server_id)
    mode = os.stat(files.bell).st_mode  # a FIFO private to the daemon
    assert stat.S_ISFIFO(mode) and stat.S_IMODE(mode) == 0o600
    rang = asyncio.Event()
    bell = OutputBell(files.bell, rang.set)
    try:
        assert bell.ringing
        await collect_log(files, b"ready")
        await asyncio.sleep(0.1)  # rings for "ready" are taken; only new output rings now
        rang.clear()
        fifo = os.open(files.fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fifo, b"hello\n")
        async with asyncio.timeout(10):
            await rang.wait()
        assert b"got:hello" in files.log.read_bytes()
        os.close(fifo)
        record = files.record()
        assert record.pid is not None
        os.killpg(record.pid, signal.SIGTERM)
        async with asyncio.timeout(10):
            while bell.ringing:  # end of file once the supervisor has exited
                rang.clear()
                await rang.wait()
        assert files.has_ended()
    finally:
        bell.close()


async def test_a_missing_or_plain_file_bell_leaves_the_reader_polling(tmp_path: Path) -> None:
    rang: list[int] = []
    assert not OutputBell(tmp_path / "absent", lambda: rang.append(1)).ringing
    plain = tmp_path / "bell"
    plain.write_bytes(b"not a fifo")
    assert not OutputBell(plain, lambda: rang.append(1)).ringing
    await asyncio.sleep(0.05)
    assert rang == []  # a plain file is always readable: it must never be watched


async def test_a_server_whose_bell_is_gone_is_still_followed_by_polling(
    tmp_path: Path, server_id: str, server_dir: Path
) -> None:
    state_dir = tmp_path / "state"
    first = ProcessRuntime(state_dir=state_dir, close_grace=2.0)
    await first.create(shell(server_id, server_dir, ECHO_LOOP))
    await first.start(server_id)
    await first.close()  # the server keeps running for the next daemon
    (state_dir / server_id / "bell").unlink()  # as if started by a supervisor without one
    second = ProcessRuntime(state_dir=state_dir, close_grace=2.0, poll_interval=0.02)
    try:
        async with await second.attach(server_id) as output:
            await second.send_input(server_id, "<script>alert(1)</script>\n")
            seen = await collect_until(output, lambda line: line.text.startswith("got:"))
        assert seen[-1].text == "got:<script>alert(1)</script>"  # data, passed on verbatim
        await second.stop(server_id, grace=5)
    finally:
        await second.close()


async def test_a_reader_takes_every_queued_chunk_in_one_step() -> None:
    subscribers = Subscribers()
    reader = QueueOutput(subscribers)
    subscribers.publish(["a", "b"])
    subscribers.publish([])
    subscribers.publish(["c"])
    assert await reader.next_lines() == ["a", "b", "c"]
    subscribers.publish(["d"])
    subscribers.end()
    assert await reader.next_lines() == ["d"]  # queued before the end: still delivered
    assert await reader.next_lines() == []


async def test_a_reader_past_its_backlog_loses_its_oldest_chunks_and_counts_them() -> None:
    subscribers = Subscribers()
    slow = QueueOutput(subscribers, backlog=5)
    fast = QueueOutput(subscribers, backlog=5)
    for first in range(0, 12, 3):
        subscribers.publish([str(n) for n in range(first, first + 3)])
        if first == 0:
            assert await fast.next_lines() == ["0", "1", "2"]
    assert await slow.next_lines() == ["9", "10", "11"]
    assert slow.dropped == 9
    assert await fast.next_lines() == ["9", "10", "11"]  # behind too: its own loss only
    assert fast.dropped == 6


async def test_line_by_line_and_batch_reads_can_be_mixed_without_loss() -> None:
    subscribers = Subscribers()
    reader = QueueOutput(subscribers)
    subscribers.publish(["one", "two", "three"])
    assert (await reader.__anext__()).text == "one"
    assert await reader.next_lines() == ["two", "three"]
    await reader.aclose()
    subscribers.publish(["late"])
    assert await reader.next_lines() == []  # a closed reader is detached


async def test_a_flood_reaches_a_batch_reader_whole_in_far_fewer_steps_than_lines(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    count = 200_000
    await process_runtime.create(shell(server_id, server_dir, f"seq {count}"))
    output = await process_runtime.attach(server_id)
    assert isinstance(output, QueueOutput)
    async with output:
        await process_runtime.start(server_id)
        lines, batches = await read_all(output)
    assert lines == [str(n) for n in range(1, count + 1)]
    assert output.dropped == 0
    assert batches < count // 50


def test_a_chunk_is_split_like_line_by_line_decoding() -> None:
    splitter = LineSplitter()
    euro = "€".encode()
    data = b"a\r\nb\xff\n" + euro[:1]
    assert splitter.feed(data) == ["a", "b\ufffd"]
    assert splitter.feed(euro[1:] + b"\n\r\nx") == ["€", ""]
    assert splitter.flush() == ["x"]


async def test_docker_output_arrives_in_batches_with_stdout_and_stderr(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    script = "seq 3000; echo oops >&2; printf tail"
    spec = ContainerSpec(
        server_id=server_id, image=docker_engine.image, command=("sh", "-c", script)
    )
    await docker_runtime.create(spec)
    output = await docker_runtime.attach(server_id)
    lines: list[str] = []
    batches = 0
    async with output:
        await docker_runtime.start(server_id)
        async with asyncio.timeout(30):
            while batch := await next_lines(output):
                lines += batch
                batches += 1
    # stdout and stderr are separate pipes in the container: their relative order is free.
    assert [line for line in lines if line not in ("oops", "tail")] == [
        str(n) for n in range(1, 3001)
    ]
    assert {"oops", "tail"} <= set(lines)
    assert batches < 3000


async def test_a_lone_viewers_echoes_are_never_held_for_the_batch_interval(
    process_runtime: ProcessRuntime, server_id: str, server_dir: Path
) -> None:
    # A 10 s batch interval: an echo held for the batch would miss the 8 s budget below.
    hub = ConsoleHub(ConsoleLimits(batch_interval=10.0, history_lines=0))
    hub.bind(process_runtime)
    await process_runtime.create(shell(server_id, server_dir, ECHO_LOOP))
    console = await hub.register(server_id)
    viewer = console.join()
    try:
        await console.power("start")
        async with asyncio.timeout(8):
            for n in range(60):  # three times the instant-frame burst the budget starts with
                await process_runtime.send_input(server_id, f"ping-{n}\n")
                while f"got:ping-{n}" not in json.loads(await viewer.next())["args"]:
                    pass
    finally:
        console.leave(viewer)
        await hub.close()


async def test_docker_input_reaches_the_container_again_after_a_restart(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime, server_id: str
) -> None:
    script = "echo ready; while read line; do echo got:$line; done"
    spec = ContainerSpec(
        server_id=server_id, image=docker_engine.image, command=("sh", "-c", script)
    )
    await docker_runtime.create(spec)
    for run in ("first", "second"):  # the kept stdin connection of the first run dies with it
        async with await docker_runtime.attach(server_id) as output:
            await docker_runtime.start(server_id)
            await collect_until(output, lambda line: line.text == "ready")
            for n in range(3):
                await docker_runtime.send_input(server_id, f"{run}-{n}\n")
                seen = await collect_until(output, lambda line: line.text.startswith("got:"))
                assert seen[-1].text == f"got:{run}-{n}"
        await docker_runtime.stop(server_id, grace=2)
