"""`bench/deploy.py` still runs: one server deployed, power-cycled and deleted, on each stack.

A smoke run with tiny counts so the bench cannot rot; it asserts that a figure was taken for
every step and that nothing is left behind, never how fast anything was (DESIGN.md §7: timing
belongs in bench output, not in test asserts).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiodocker
import pytest

from stellarstack.broker import MemoryBroker, RedisBroker
from tests.support.services import DockerEngine, PostgresServer, RedisServer

BENCH = Path(__file__).resolve().parents[2] / "bench" / "deploy.py"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_deploy", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(
    params=[
        "sqlite+memory",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """The panel's database and broker: the embedded default, and PostgreSQL + Redis."""
    if request.param == "sqlite+memory":
        yield bench.Stack("SQLite", f"sqlite+aiosqlite:///{tmp_path / 'panel.db'}", MemoryBroker())
        return
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    redis: RedisServer = request.getfixturevalue("redis_server")
    url = postgres.url(postgres.create_database())
    yield bench.Stack("PostgreSQL + Redis", url, RedisBroker(redis.url))


async def bench_containers(host: str) -> list[str]:
    """Names of the containers the bench creates (its servers' and its raw floor's)."""
    async with aiodocker.Docker(url=host) as docker:
        found = await docker.containers.list(all=True)
    names = [name.lstrip("/") for c in found for name in c["Names"]]
    return [n for n in names if n.startswith("stellar-bench-raw-")]


async def test_one_deploy_and_power_round_are_measured_and_nothing_is_left_behind(
    docker_engine: DockerEngine, stack: object
) -> None:
    figures = await bench.run(docker_engine.host, stack, servers=1, rounds=1)

    measured = {
        name: getattr(figures, name)
        for name in ("deploy", "raw_create_start", "raw_create_ready", "raw_start", "raw_stop")
    }
    for action in ("start", "stop"):
        measured[f"{action} applied"] = figures.applied[action]
        measured[f"{action} answered"] = figures.answered[action]
    assert {name: len(values) for name, values in measured.items()} == dict.fromkeys(measured, 1)
    assert all(value > 0 for values in measured.values() for value in values), measured
    assert figures.raw_create_ready[0] >= figures.raw_create_start[0]
    assert await bench_containers(docker_engine.host) == []

    report = "\n".join(bench.table(figures))
    for row in ("POST /servers → RUNNING p50", "start → RUNNING p50", "stop → OFFLINE p50"):
        assert row in report, report
    assert report.count("x  target ≤ 1.5x") == 2, report


def test_the_table_flags_a_ratio_above_target() -> None:
    figures = bench.Figures("SQLite", servers=1, rounds=1)
    figures.deploy, figures.raw_create_start, figures.raw_create_ready = [500.0], [300.0], [310.0]
    figures.applied = {"start": [400.0], "stop": [90.0]}
    figures.answered = {"start": [380.0], "stop": [110.0]}  # the later of the two counts
    figures.raw_start, figures.raw_stop = [100.0], [100.0]

    lines = bench.table(figures)

    start = next(line for line in lines if line.lstrip().startswith("start"))
    stop = next(line for line in lines if line.lstrip().startswith("stop"))
    assert "4.00x" in start and "ABOVE TARGET" in start
    assert "1.10x" in stop and stop.endswith("ok")


def test_the_command_refuses_a_run_without_servers() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--servers", "0"], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert "--servers must be at least 1" in done.stderr
