"""Config-file edits: the four parsers, files created when missing, and no way out of the dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from stellarstack.daemon.errors import CommandFailedError
from stellarstack.daemon.servers.configfiles import apply_edit, apply_edits
from stellarstack.daemon.servers.confine import PathEscapeError
from stellarstack.protocol.servers import ConfigEdit
from tests.daemon.servers.conftest import Servers


def edit(path: str, parser: str, **values: object) -> ConfigEdit:
    """One edit setting `values` in `path`."""
    return ConfigEdit.model_validate({"path": path, "parser": parser, "set": values})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A server directory."""
    path = tmp_path / "server"
    path.mkdir()
    return path


def test_properties_keys_are_set_and_other_lines_kept(root: Path) -> None:
    (root / "server.properties").write_text("#Minecraft\nmotd=old\nonline-mode=true\n")
    apply_edit(root, edit("server.properties", "properties", **{"motd": "new", "max-players": 20}))
    assert (root / "server.properties").read_text() == (
        "#Minecraft\nmotd=new\nonline-mode=true\nmax-players=20\n"
    )


def test_a_value_cannot_smuggle_a_second_property_line(root: Path) -> None:
    apply_edit(root, edit("server.properties", "properties", motd="hi\nop-permission-level=4"))
    text = (root / "server.properties").read_text()
    assert text == "motd=hi op-permission-level=4\n"


def test_yaml_nested_keys_are_set(root: Path) -> None:
    (root / "config.yml").write_text("settings:\n  bungeecord: false\n  keep: 1\n")
    apply_edit(root, edit("config.yml", "yaml", **{"settings.bungeecord": True, "port": 25577}))
    assert yaml.safe_load((root / "config.yml").read_text()) == {
        "settings": {"bungeecord": True, "keep": 1},
        "port": 25577,
    }


def test_json_nested_keys_are_set_in_a_new_file(root: Path) -> None:
    apply_edit(root, edit("cfg/game.json", "json", **{"server.name": "<b>x</b>", "slots": 8}))
    assert json.loads((root / "cfg/game.json").read_text()) == {
        "server": {"name": "<b>x</b>"},
        "slots": 8,
    }


def test_ini_sections_are_split_at_the_last_dot(root: Path) -> None:
    (root / "Game.ini").write_text(
        "; comment\n[/Script/Engine.GameSession]\nMaxPlayers=10\nOther=1\n"
    )
    apply_edit(
        root,
        edit(
            "Game.ini",
            "ini",
            **{"/Script/Engine.GameSession.MaxPlayers": 32, "Server.Name": "hello", "top": 1},
        ),
    )
    text = (root / "Game.ini").read_text()
    assert "; comment\ntop=1\n[/Script/Engine.GameSession]\nMaxPlayers=32\nOther=1\n" in text
    assert text.endswith("[Server]\nName=hello\n")


def test_a_broken_json_file_is_a_clear_error(root: Path) -> None:
    (root / "game.json").write_text("{not json")
    with pytest.raises(CommandFailedError, match="not valid JSON"):
        apply_edit(root, edit("game.json", "json", a=1))


@pytest.mark.parametrize(
    "path",
    [
        "../outside.properties",
        ".../...//../outside.properties",
        "cfg/../../outside.properties",
        "/etc/outside.properties",
        "..\\outside.properties",
        "cfg/\0.properties",
    ],
)
def test_paths_that_leave_the_directory_are_refused(root: Path, path: str) -> None:
    with pytest.raises(PathEscapeError):
        apply_edits(root, [edit(path, "properties", a=1)])
    assert not (root.parent / "outside.properties").exists()


def test_a_percent_encoded_path_is_a_literal_name_inside(root: Path) -> None:
    apply_edit(root, edit("%2e%2e%2foutside.properties", "properties", a=1))
    assert (root / "%2e%2e%2foutside.properties").exists()
    assert not (root.parent / "outside.properties").exists()


def test_a_symlinked_file_is_not_followed_out(root: Path) -> None:
    target = root.parent / "secret.properties"
    target.write_text("password=hunter2\n")
    (root / "server.properties").symlink_to(target)
    with pytest.raises(PathEscapeError, match="symlink"):
        apply_edits(root, [edit("server.properties", "properties", password="x")])
    assert target.read_text() == "password=hunter2\n"


def test_a_symlinked_folder_is_not_followed_out(root: Path) -> None:
    outside = root.parent / "elsewhere"
    outside.mkdir()
    (root / "cfg").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="symlink"):
        apply_edits(root, [edit("cfg/game.json", "json", a=1)])
    assert list(outside.iterdir()) == []


def test_a_dangling_symlink_is_not_followed_to_create_a_file(root: Path) -> None:
    (root / "server.properties").symlink_to(root.parent / "created-outside")
    with pytest.raises(PathEscapeError):
        apply_edits(root, [edit("server.properties", "properties", a=1)])
    assert not (root.parent / "created-outside").exists()


def test_a_fifo_under_a_config_name_does_not_hang_the_daemon(root: Path) -> None:
    os.mkfifo(root / "server.properties")
    with pytest.raises(PathEscapeError, match="not a regular file"):
        apply_edits(root, [edit("server.properties", "properties", a=1)])


def test_a_hard_link_is_replaced_not_written_through(root: Path) -> None:
    outside = root.parent / "shared.properties"
    outside.write_text("a=0\n")
    os.link(outside, root / "server.properties")
    apply_edit(root, edit("server.properties", "properties", a=1))
    assert outside.read_text() == "a=0\n"
    assert (root / "server.properties").read_text() == "a=1\n"


async def test_a_symlink_escape_in_a_deployment_fails_it_and_leaves_nothing(
    process_servers: Servers, server_id: str
) -> None:
    servers = process_servers
    install = {"image": "x", "script": "ln -s /etc/passwd server.properties"}
    spec = servers.spec(
        server_id,
        install=install,
        configFiles=[{"path": "server.properties", "parser": "properties", "set": {"a": 1}}],
    )
    with pytest.raises(PathEscapeError):
        await servers.manager.create(spec)
    assert not await servers.exists(server_id)
    assert not servers.store.volume_dir(server_id).exists()


@pytest.mark.parametrize(
    ("parser", "key"),
    [
        ("properties", "motd\nop-permission-level"),
        ("properties", "a=b"),
        ("ini", "Section.key\n[Other]"),
        ("ini", "Section."),
        ("yaml", "a..b"),
        ("json", ""),
    ],
)
def test_keys_that_would_write_another_entry_are_refused(root: Path, parser: str, key: str) -> None:
    with pytest.raises(CommandFailedError, match="config key"):
        apply_edits(root, [edit("game.cfg", parser, **{key: 1})])
    assert not (root / "game.cfg").exists()
