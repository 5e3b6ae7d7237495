"""Where the embedded daemon listens and which origins its console accepts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stellarstack.broker import MemoryBroker
from stellarstack.daemon.service import DaemonService
from stellarstack.embedded import bound_port, daemon_listener, embedded_daemon_settings
from stellarstack.serve import PortInUse
from stellarstack.settings import PanelSettings
from tests.support.services import free_port


def _hold(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _port_with_a_free_next() -> int:
    for _ in range(50):
        port = free_port()
        try:
            _hold(port + 1).close()
        except OSError:
            continue
        return port
    raise AssertionError("no free pair of ports")


async def test_the_daemon_takes_the_port_after_the_panels(tmp_path: Path) -> None:
    settings = PanelSettings(data_dir=tmp_path, port=_port_with_a_free_next())
    daemon = embedded_daemon_settings(settings)
    listener = daemon_listener(DaemonService(daemon, MemoryBroker()), settings, daemon)
    try:
        assert bound_port(listener) == settings.port + 1
    finally:
        listener.sock.close()


async def test_a_busy_next_port_falls_back_to_any_free_port(tmp_path: Path) -> None:
    settings = PanelSettings(data_dir=tmp_path, port=free_port())
    held = _hold(settings.port + 1)
    daemon = embedded_daemon_settings(settings)
    try:
        listener = daemon_listener(DaemonService(daemon, MemoryBroker()), settings, daemon)
        try:
            assert bound_port(listener) not in (0, settings.port, settings.port + 1)
        finally:
            listener.sock.close()
    finally:
        held.close()


async def test_an_explicit_daemon_port_that_is_busy_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = free_port()
    held = _hold(busy)
    monkeypatch.setenv("STELLAR_DAEMON_PORT", str(busy))
    settings = PanelSettings(data_dir=tmp_path, port=free_port())
    daemon = embedded_daemon_settings(settings)
    try:
        with pytest.raises(PortInUse, match=str(busy)):
            daemon_listener(DaemonService(daemon, MemoryBroker()), settings, daemon)
    finally:
        held.close()


def test_loopback_panels_are_accepted_under_every_loopback_name(tmp_path: Path) -> None:
    daemon = embedded_daemon_settings(PanelSettings(data_dir=tmp_path, port=8080))
    assert {
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    } <= set(daemon.console_allowed_origins)


def test_a_public_panel_url_is_the_only_origin(tmp_path: Path) -> None:
    settings = PanelSettings(data_dir=tmp_path, public_url="https://panel.example.com")
    daemon = embedded_daemon_settings(settings)
    assert daemon.panel_url == "https://panel.example.com"
    assert daemon.console_allowed_origins == []
