"""Egg import: every sample egg becomes a blueprint, and nothing is dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stellarstack.blueprints.eggs import import_egg, import_egg_text
from stellarstack.blueprints.errors import EggImportError, InvalidBlueprint
from stellarstack.blueprints.startup import shell_command
from stellarstack.blueprints.variables import resolve
from tests.blueprints.conftest import EGGS_DIR, SHARED_EGGS, sample_eggs


def _load(name: str) -> tuple[object, object]:
    return import_egg_text((EGGS_DIR / name).read_text(), origin=name)


def test_every_sample_egg_imports_with_its_report(
    egg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blueprint, report = import_egg_text(egg_path.read_text(), origin=egg_path.name)
    assert report.format in {"PTDL_v1", "PTDL_v2", "PLCN_v3"}
    assert blueprint.docker.image and blueprint.startup.command
    assert blueprint.source.kind == "egg" and blueprint.source.format == report.format
    assert any(u.path == "_comment" for u in report.unmapped), "the banner is reported"
    # The egg's own defaults render into a shell command whose values stay in the env.
    values = resolve(blueprint, editable_only=False).values
    command = shell_command(blueprint.startup.command, values, builtins=blueprint.known_variables())
    assert "{{" not in command.script
    with capsys.disabled():
        counts = report.counts
        print(
            f"\n  egg {egg_path.name}: {report.format}, {counts['mapped']} mapped, "
            f"{counts['unmapped']} unmapped, {counts['warnings']} warnings"
        )


def test_all_shared_samples_are_also_in_the_test_data() -> None:
    if not SHARED_EGGS.is_dir():
        pytest.skip(f"no shared eggs folder at {SHARED_EGGS.resolve()}")
    copied = {p.name for p in sample_eggs()}
    assert {p.name for p in SHARED_EGGS.iterdir()} <= copied


def test_pterodactyl_minecraft_maps_startup_rules_install_done_and_config() -> None:
    blueprint, report = _load("pterodactyl-vanilla-minecraft.json")
    assert blueprint.slug == "vanilla-minecraft" and blueprint.category == "minecraft"
    assert blueprint.startup.command == (
        "java -Xms128M -XX:MaxRAMPercentage=95.0 -jar {{SERVER_JARFILE}}"
    )
    assert blueprint.docker.image == "ghcr.io/pelican-eggs/yolks:java_21"
    assert blueprint.docker.images["Java 8"] == "ghcr.io/pelican-eggs/yolks:java_8"
    assert blueprint.startup.stop.command == "stop"
    assert blueprint.startup.ready is not None and blueprint.startup.ready.type == "log"
    assert blueprint.startup.ready.pattern == r"\)! For help, type "
    assert blueprint.install is not None
    assert blueprint.install.image == "ghcr.io/pelican-eggs/installers:alpine"
    assert blueprint.install.entrypoint == "ash" and "curl" in blueprint.install.script
    jar = blueprint.variable("SERVER_JARFILE")
    assert jar is not None and jar.rule_set.check("server.zip") == ["has an invalid format"]
    version = blueprint.variable("VANILLA_VERSION")
    assert version is not None and version.rule_set.check("ab") == [
        "must be between 3 and 15 characters"
    ]
    (properties,) = blueprint.config_files
    assert properties.parser == "properties"
    assert properties.set == {
        "server-ip": "",
        "server-port": "{{SERVER_PORT}}",
        "query.port": "{{SERVER_PORT}}",
    }
    assert blueprint.features == ["eula", "java_version", "pid_limit"]
    assert report.counts["unmapped"] == 1


def test_pelican_factorio_maps_list_rules_and_server_environment_placeholders() -> None:
    blueprint, report = _load("pelican-factorio.yaml")
    assert report.format == "PLCN_v3"
    assert blueprint.icon is not None and blueprint.icon.startswith("data:image/jpeg;base64,")
    assert blueprint.tags == ["factorio"] and blueprint.category == "factorio"
    slots = blueprint.variable("MAX_SLOTS")
    assert slots is not None and not slots.user_editable
    assert slots.rule_set.check("1234") == ["must have between 1 and 3 digits"]
    (settings,) = blueprint.config_files
    assert settings.set["name"] == "{{SERVER_NAME}}"
    assert blueprint.startup.stop.command == "/quit"
    # Variables come in the egg's `sort` order.
    assert [v.env for v in blueprint.variables][:3] == [
        "FACTORIO_VERSION",
        "MAX_SLOTS",
        "SAVE_NAME",
    ]


def test_redbot_caret_c_becomes_sigint_and_empty_required_defaults_are_warned() -> None:
    blueprint, report = _load("pterodactyl-redbot.json")
    assert blueprint.startup.stop.signal == "SIGINT" and blueprint.startup.stop.command is None
    assert any(w.startswith("OWNER:") for w in report.warnings)


def test_cs2_keeps_shell_syntax_and_renders_values_inertly() -> None:
    blueprint, _ = _load("pterodactyl-counter-strike-2.json")
    assert blueprint.startup.command is not None
    command = shell_command(
        blueprint.startup.command,
        {**resolve(blueprint, editable_only=False).values, "SERVER_NAME": '"; reboot; echo "'},
        builtins=blueprint.known_variables(),
    )
    assert "reboot" not in command.script
    assert '+hostname "${SERVER_NAME}"' in command.script


def test_ptdl_v1_reports_xml_parser_custom_logs_unknown_rules_and_placeholders() -> None:
    blueprint, report = _load("ptdl-v1-terraria-vanilla.json")
    assert report.format == "PTDL_v1"
    assert blueprint.docker.image == "ghcr.io/parkervcp/yolks:debian"
    assert "-ip {{SERVER_IP}}" in (blueprint.startup.command or "")
    assert blueprint.startup.stop.command == "exit"
    ready = blueprint.startup.ready
    assert (
        ready is not None and ready.pattern == r"Type 'help' for a list of commands|Server started"
    )
    reasons = {u.path: u.reason for u in report.unmapped}
    assert reasons['config.files["settings.xml"]'] == "the 'xml' config parser is not supported"
    assert "no StellarStack equivalent" in reasons['config.files["serverconfig.txt"].find.listen']
    assert reasons["variables[3].rules"] == "unknown rule 'confirmed' dropped"
    assert "custom log files" in reasons["config.logs.location"]
    (config,) = blueprint.config_files
    assert set(config.set) == {"worldpath", "worldname", "maxplayers"}


def test_every_unmapped_leaf_is_reported_even_unknown_keys() -> None:
    egg = json.loads((EGGS_DIR / "pterodactyl-redbot.json").read_text())
    egg["x_future_field"] = {"nested": {"deep": 42}}
    egg["variables"][0]["validation_hint"] = "shown nowhere"
    _, report = import_egg(egg, origin="future")
    paths = {u.path for u in report.unmapped}
    assert "x_future_field.nested.deep" in paths
    assert "variables[0].validation_hint" in paths


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ('{"meta": {"version": "PTDL_v9"}}', EggImportError, "not an egg"),
        ("[1, 2]", EggImportError, "not an egg"),
        ('{"meta": ', InvalidBlueprint, "not valid JSON"),
        ("meta: [unclosed", InvalidBlueprint, "not valid YAML"),
    ],
)
def test_documents_that_are_not_eggs_are_refused(
    text: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        import_egg_text(text)


def test_egg_without_usable_image_is_refused() -> None:
    egg = json.loads((EGGS_DIR / "pterodactyl-redbot.json").read_text())
    egg["docker_images"] = {"bad": "not an image; rm -rf /"}
    with pytest.raises(EggImportError, match="no usable docker image"):
        import_egg(egg)


def test_hostile_egg_placeholders_and_paths_are_reported_not_applied() -> None:
    egg = json.loads((EGGS_DIR / "pterodactyl-redbot.json").read_text())
    egg["startup"] = "run {{UNDECLARED}} {{server.build.secret}} --token {{TOKEN}}"
    egg["config"]["files"] = json.dumps(
        {"../../etc/passwd": {"parser": "properties", "find": {"root": "x"}}}
    )
    blueprint, report = import_egg(egg)
    assert blueprint.startup.command == "run   --token {{TOKEN}}"
    assert blueprint.config_files == []
    reasons = {u.path: u.reason for u in report.unmapped}
    assert "outside the server directory" in reasons['config.files["../../etc/passwd"]']
    assert any("UNDECLARED" in w for w in report.warnings)
