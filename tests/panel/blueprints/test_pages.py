"""Blueprint pages over ASGI: catalogue, detail, import preview and save, sync; escaping."""

from __future__ import annotations

import json

from tests.blueprints.conftest import EGGS_DIR
from tests.panel.blueprints.conftest import BlueprintPanel

HTMX = {"HX-Request": "true"}


def _hostile_egg() -> str:
    egg = json.loads((EGGS_DIR / "pterodactyl-redbot.json").read_text())
    egg["name"] = "Evil <script>alert(1)</script> Bot"
    egg["description"] = "<img src=x onerror=alert(2)>"
    egg["variables"][0]["name"] = "<b>Token</b>"
    return json.dumps(egg)


async def test_catalogue_page_lists_cards_and_filters(sqlite_panel: BlueprintPanel) -> None:
    page = await sqlite_panel.player.get("/blueprints")
    assert page.status_code == 200
    assert page.text.count('data-testid="blueprint-card"') >= 20
    assert 'href="/blueprints/luanti"' in page.text
    assert "Import or sync" not in page.text, "players see no admin action"
    voice = await sqlite_panel.player.get("/blueprints", params={"category": "voice"})
    assert voice.text.count('data-testid="blueprint-card"') == 2
    searched = await sqlite_panel.player.get("/blueprints", params={"q": "zzz-no-such"})
    assert "No blueprint matches" in searched.text


async def test_detail_page_shows_versions_variables_and_ports(sqlite_panel: BlueprintPanel) -> None:
    page = await sqlite_panel.player.get("/blueprints/minecraft-paper")
    assert page.status_code == 200
    assert "itzg/minecraft-server:java17" in page.text
    assert "MAX_PLAYERS" in page.text and "25565" in page.text
    assert "Done \\([0-9.]+s\\)! For help, type" in page.text
    luanti = await sqlite_panel.player.get("/blueprints/luanti")
    assert luanti.status_code == 200
    assert "minetestserver --port {{SERVER_PORT}} --gameid minetest" in luanti.text
    missing = await sqlite_panel.player.get("/blueprints/no-such-game")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


async def test_import_preview_then_save_escapes_hostile_text(sqlite_panel: BlueprintPanel) -> None:
    document = _hostile_egg()
    preview = await sqlite_panel.admin.post(
        "/blueprints/import",
        headers=HTMX,
        files={"file": ("evil.json", document.encode(), "application/json")},
    )
    assert preview.status_code == 200, preview.text
    assert 'data-testid="import-preview"' in preview.text
    assert "<script>alert(1)" not in preview.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview.text
    assert "_comment" in preview.text, "the report is shown before saving"

    saved = await sqlite_panel.admin.post(
        "/blueprints/import",
        headers=HTMX,
        data={"document": document, "filename": "evil.json", "action": "save"},
    )
    assert saved.status_code == 204, saved.text
    slug = "evil-script-alert-1-script-bot"
    assert saved.headers["HX-Redirect"] == f"/blueprints/{slug}"

    detail = await sqlite_panel.player.get(f"/blueprints/{slug}")
    assert detail.status_code == 200
    for raw in ("<script>alert(1)", "<img src=x", "<b>Token</b>"):
        assert raw not in detail.text
    assert 'data-testid="import-report"' in detail.text
    catalogue = await sqlite_panel.player.get("/blueprints")
    assert "<script>alert(1)" not in catalogue.text


async def test_import_errors_are_shown_in_the_fragment(sqlite_panel: BlueprintPanel) -> None:
    empty = await sqlite_panel.admin.post("/blueprints/import", headers=HTMX, data={"slug": ""})
    assert "Paste an egg or a blueprint, or choose a file." in empty.text
    broken = await sqlite_panel.admin.post(
        "/blueprints/import", headers=HTMX, data={"document": '{"meta": {"version": "X"}}'}
    )
    assert 'data-testid="import-error"' in broken.text and "not an egg" in broken.text
    taken = await sqlite_panel.admin.post(
        "/blueprints/import",
        headers=HTMX,
        data={"document": (EGGS_DIR / "pelican-factorio.yaml").read_text(), "action": "save"},
    )
    assert "already exists (builtin)" in taken.text


async def test_players_cannot_open_or_use_the_import_page(sqlite_panel: BlueprintPanel) -> None:
    assert (await sqlite_panel.player.get("/blueprints/import")).status_code == 403
    posted = await sqlite_panel.player.post(
        "/blueprints/import", headers=HTMX, data={"document": "x"}
    )
    assert posted.status_code == 403


async def test_sync_form_reports_a_refused_loopback_url(sqlite_panel: BlueprintPanel) -> None:
    page = await sqlite_panel.admin.get("/blueprints/import")
    assert page.status_code == 200 and 'data-testid="sync-form"' in page.text
    refused = await sqlite_panel.admin.post(
        "/blueprints/sync",
        data={"source": "url", "url": "http://127.0.0.1:1/x.json", "csrf_token": "ignored"},
    )
    assert refused.status_code == 422
    assert "public hosts" in refused.text
