"""Session fixtures: real PostgreSQL, Redis, Docker Engine and chromium (see tests/support)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import services
from tests.support.services import (
    DockerEngine,
    PostgresServer,
    RedisServer,
    require,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole run."""
    server, reason = services.start_postgres()
    if server is None:
        require(False, reason)
    assert server is not None
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy async URL)."""
    return postgres_server.url(postgres_server.create_database())


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole run."""
    server, reason = services.start_redis()
    if server is None:
        require(False, reason)
    assert server is not None
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The Redis URL, flushed before each test so tests do not see each other's keys."""
    import redis as redis_sync

    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A Docker Engine (dockerd started if none answers) with the busybox test image built."""
    engine, reason = services.start_docker()
    if engine is None:
        require(False, reason)
    assert engine is not None
    yield engine
    engine.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Run a test once on SQLite (a fresh file) and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """Debian's chromium driven by Playwright (launched by path; no browser download)."""
    path = services.chromium_path()
    require(path is not None, "chromium is not installed (Debian package `chromium`)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover
        require(False, "playwright (Python) is not installed")
        raise
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=path, headless=True, args=services.CHROMIUM_ARGS
        )
        yield instance
        await instance.close()


@pytest.fixture(scope="session")
def live_panel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real embedded default (`stellarstack up`) on a free port, with its first admin."""
    from tests.support.panel import start_embedded_panel

    panel = start_embedded_panel(tmp_path_factory.mktemp("live-panel"))
    yield panel
    panel.stop()


COMPONENT_FIXTURES = {
    "postgres": {"postgres_server", "postgres_url"},
    "redis": {"redis_server", "redis_url"},
    "docker": {"docker_engine"},
    "browser": {"browser"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the real components its fixtures start (for -m and the summary)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("database_url") == "postgres":
            names.add("postgres_url")
        for marker, fixtures in COMPONENT_FIXTURES.items():
            if names & fixtures:
                item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many tests ran against each real component (passed / skipped / failed)."""
    rows = []
    for marker in COMPONENT_FIXTURES:
        counts = {"passed": 0, "skipped": 0, "failed": 0}
        for outcome in counts:
            for report in terminalreporter.stats.get(outcome, []):
                if marker in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                    if outcome == "passed" and report.when != "call":
                        continue
                    counts[outcome] += 1
        rows.append(
            f"{marker:<9} ran {counts['passed']} ok / {counts['skipped']} skip / "
            f"{counts['failed']} fail"
        )
    terminalreporter.write_sep("-", "tests against real components")
    for row in rows:
        terminalreporter.write_line(row)
