"""The blueprints API: browse (any user), import eggs and sync (admins), on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from stellarstack.panel.db.models import AuditLog, Blueprint, BlueprintVersion
from stellarstack.panel.domain.blueprints.importing import install_catalog
from tests.blueprints.conftest import EGGS_DIR
from tests.panel.blueprints.conftest import BlueprintPanel

MINECRAFT_EGG = (EGGS_DIR / "pterodactyl-vanilla-minecraft.json").read_text()


async def test_catalogue_lists_versions_and_details_on_both_engines(
    engine_panel: BlueprintPanel,
) -> None:
    listed = await engine_panel.player.get("/api/v1/blueprints")
    assert listed.status_code == 200, listed.text
    slugs = {b["slug"] for b in listed.json()["data"]}
    assert {"minecraft-paper", "luanti", "valheim", "counter-strike-2"} <= slugs
    assert listed.json()["meta"]["total"] == len(slugs)

    detail = (await engine_panel.player.get("/api/v1/blueprints/minecraft-paper")).json()["data"]
    assert detail["dockerImage"] == "itzg/minecraft-server:java21"
    assert detail["configSchema"]["properties"]["MAX_PLAYERS"]["maximum"] == 1000
    assert detail["definition"]["startup"]["stop"]["command"] == "stop"
    assert [v["tag"] for v in detail["versions"]] == ["1.21.4", "1.20.6", "1.20.4"]
    by_id = await engine_panel.player.get(f"/api/v1/blueprints/{detail['id']}/versions")
    versions = by_id.json()["data"]
    assert versions[0]["recommended"] is True
    assert versions[2]["dockerImage"] == "itzg/minecraft-server:java17"
    assert versions[2]["channel"] == "legacy"


async def test_import_egg_then_reimport_is_unchanged_on_both_engines(
    engine_panel: BlueprintPanel,
) -> None:
    body = {"document": MINECRAFT_EGG, "filename": "vanilla.json"}
    first = await engine_panel.admin.post("/api/v1/admin/blueprints/import", json=body)
    assert first.status_code == 200, first.text
    data = first.json()["data"]
    assert data["outcome"] == "created" and data["slug"] == "vanilla-minecraft"
    assert data["report"]["counts"]["unmapped"] == 1
    assert data["blueprint"]["source"] == "egg"
    again = await engine_panel.admin.post("/api/v1/admin/blueprints/import", json=body)
    assert again.json()["data"]["outcome"] == "unchanged"
    async with engine_panel.database.sessionmaker() as db:
        row = (
            await db.execute(select(Blueprint).where(Blueprint.slug == "vanilla-minecraft"))
        ).scalar_one()
        assert row.import_report is not None and row.source_hash
        versions = (
            await db.execute(select(func.count()).where(BlueprintVersion.blueprint_id == row.id))
        ).scalar_one()
        assert versions == 1
        audit = (
            (await db.execute(select(AuditLog).where(AuditLog.action == "blueprint.import")))
            .scalars()
            .all()
        )
        assert len(audit) == 2


async def test_install_catalog_is_idempotent(sqlite_panel: BlueprintPanel) -> None:
    summary = await install_catalog(sqlite_panel.database, sqlite_panel.settings)
    assert not summary.created and not summary.updated
    assert len(summary.unchanged) >= 20


async def test_dry_run_previews_without_saving(sqlite_panel: BlueprintPanel) -> None:
    egg = (EGGS_DIR / "pelican-factorio.yaml").read_text()
    response = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/import",
        json={"document": egg, "filename": "factorio.yaml", "dryRun": True},
    )
    data = response.json()["data"]
    assert data["outcome"] == "preview" and data["blueprint"] is None
    assert data["exists"] is True, "the shipped factorio blueprint has that slug"
    assert data["report"]["format"] == "PLCN_v3"


async def test_egg_never_silently_replaces_a_shipped_blueprint(
    sqlite_panel: BlueprintPanel,
) -> None:
    egg = (EGGS_DIR / "pelican-factorio.yaml").read_text()
    refused = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/import", json={"document": egg}
    )
    assert refused.status_code == 409
    assert "force" in refused.json()["error"]["detail"]
    renamed = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/import", json={"document": egg, "slug": "factorio-egg"}
    )
    assert renamed.json()["data"]["outcome"] == "created"
    shipped = await sqlite_panel.player.get("/api/v1/blueprints/factorio")
    assert shipped.json()["data"]["source"] == "builtin"


async def test_upload_as_multipart(sqlite_panel: BlueprintPanel) -> None:
    egg = (EGGS_DIR / "pterodactyl-redbot.json").read_bytes()
    response = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/import",
        files={"file": ("redbot.json", egg, "application/json")},
        data={"dryRun": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["slug"] == "red"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"document": '{"meta": '}, 422, "document"),
        ({"document": "slug: x\nname: y\n"}, 422, "document.docker"),
        ({"document": json.dumps({"meta": {"version": "PTDL_v0"}})}, 422, "document"),
        ({"document": MINECRAFT_EGG, "slug": "../../etc"}, 422, "slug"),
        ({"doc": "x"}, 422, "document"),
        ([1, 2], 422, "body"),
    ],
)
async def test_bad_imports_are_422_with_fields(
    sqlite_panel: BlueprintPanel, body: object, status: int, field: str
) -> None:
    response = await sqlite_panel.admin.post("/api/v1/admin/blueprints/import", json=body)
    assert response.status_code == status, response.text
    fields = [e["field"] for e in response.json()["error"].get("errors", [])]
    assert any(f.startswith(field) for f in fields), fields


async def test_non_json_body_is_a_400(sqlite_panel: BlueprintPanel) -> None:
    response = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/import",
        content=b"not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_players_and_strangers_cannot_import_or_sync(sqlite_panel: BlueprintPanel) -> None:
    body = {"document": MINECRAFT_EGG}
    assert (
        await sqlite_panel.player.post("/api/v1/admin/blueprints/import", json=body)
    ).status_code == 403
    assert (
        await sqlite_panel.player.post("/api/v1/admin/blueprints/sync", json={"source": "git"})
    ).status_code == 403
    assert (await sqlite_panel.anonymous.get("/api/v1/blueprints")).status_code == 401


@pytest.mark.parametrize(
    "ref",
    ["no-such-game", "00000000-0000-0000-0000-000000000000", "x" * 300, "..%2F..%2Fetc%2Fpasswd"],
)
async def test_unknown_blueprints_are_404(sqlite_panel: BlueprintPanel, ref: str) -> None:
    assert (await sqlite_panel.player.get(f"/api/v1/blueprints/{ref}")).status_code == 404
    versions = await sqlite_panel.player.get(f"/api/v1/blueprints/{ref}/versions")
    assert versions.status_code == 404


async def test_search_and_category_filters(sqlite_panel: BlueprintPanel) -> None:
    found = await sqlite_panel.player.get("/api/v1/blueprints", params={"search": "MINEcraft"})
    slugs = {b["slug"] for b in found.json()["data"]}
    assert "minecraft-paper" in slugs and "valheim" not in slugs
    voice = await sqlite_panel.player.get("/api/v1/blueprints", params={"category": "voice"})
    assert {b["slug"] for b in voice.json()["data"]} == {"mumble", "teamspeak"}
    wild = await sqlite_panel.player.get("/api/v1/blueprints", params={"search": "%_\\"})
    assert wild.json()["data"] == []


async def test_sync_refuses_loopback_and_bad_sources(sqlite_panel: BlueprintPanel) -> None:
    loopback = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/sync",
        json={"source": "url", "url": "http://127.0.0.1:9/egg.json"},
    )
    assert loopback.status_code == 422
    assert "public hosts" in loopback.json()["error"]["detail"]
    no_url = await sqlite_panel.admin.post("/api/v1/admin/blueprints/sync", json={"source": "git"})
    assert no_url.status_code == 422
    file_url = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/sync", json={"source": "git", "url": "file:///etc"}
    )
    assert file_url.status_code == 422
    no_dir = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/sync", json={"source": "directory"}
    )
    assert no_dir.status_code == 400


async def test_sync_from_the_operator_directory(sqlite_panel: BlueprintPanel) -> None:
    directory: Path = sqlite_panel.settings.data_dir / "blueprints"
    directory.mkdir(exist_ok=True)
    (directory / "red.json").write_text((EGGS_DIR / "pterodactyl-redbot.json").read_text())
    (directory / "broken.yaml").write_text("slug: [")
    response = await sqlite_panel.admin.post(
        "/api/v1/admin/blueprints/sync", json={"source": "directory"}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert "red" in data["created"] + data["unchanged"] + data["updated"]
    assert [p["origin"] for p in data["problems"]] == ["broken.yaml"]


async def _key(panel: BlueprintPanel, kind: str, permissions: list[str]) -> dict[str, str]:
    created = await panel.admin.post(
        "/api/v1/users/me/api-keys",
        json={"name": f"{kind}-blueprints", "kind": kind, "permissions": permissions},
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['data']['token']}"}


async def test_application_keys_with_the_permission_can_import(
    sqlite_panel: BlueprintPanel,
) -> None:
    body = {"document": MINECRAFT_EGG, "slug": "vanilla-by-key", "dryRun": True}
    allowed = await _key(sqlite_panel, "application", ["platform.blueprints"])
    response = await sqlite_panel.anonymous.post(
        "/api/v1/admin/blueprints/import", json=body, headers=allowed
    )
    assert response.status_code == 200, response.text
    other = await _key(sqlite_panel, "application", ["user.view"])
    refused = await sqlite_panel.anonymous.post(
        "/api/v1/admin/blueprints/import", json=body, headers=other
    )
    assert refused.status_code == 403
    client = await _key(sqlite_panel, "client", ["server.view"])
    refused = await sqlite_panel.anonymous.post(
        "/api/v1/admin/blueprints/import", json=body, headers=client
    )
    assert refused.status_code == 403


async def test_players_do_not_see_variables_hidden_from_users(
    sqlite_panel: BlueprintPanel,
) -> None:
    as_player = await sqlite_panel.player.get("/api/v1/blueprints/minecraft-paper")
    player_vars = {v["env"] for v in as_player.json()["data"]["definition"]["variables"]}
    as_admin = await sqlite_panel.admin.get("/api/v1/blueprints/minecraft-paper")
    admin_vars = {v["env"] for v in as_admin.json()["data"]["definition"]["variables"]}
    assert "TYPE" in admin_vars and "TYPE" not in player_vars
    assert "MAX_PLAYERS" in player_vars
