"""Panel start: the shipped catalogue is installed once, node credentials come back."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from stellarstack.broker import RedisBroker
from stellarstack.panel.db.models import Blueprint
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.nodes.tokens import new_node_token, token_hash
from stellarstack.panel.startup import prepare_panel
from stellarstack.protocol import keys
from stellarstack.settings import PanelSettings
from tests.panel.db.factories import make_node


async def _blueprints(database: Database) -> int:
    async with database.sessionmaker() as db:
        return int((await db.execute(select(func.count()).select_from(Blueprint))).scalar_one())


async def test_the_shipped_catalogue_is_installed_once(
    panel_database: Database, panel_settings: PanelSettings
) -> None:
    assert await _blueprints(panel_database) == 0
    await prepare_panel(panel_database, panel_settings)
    installed = await _blueprints(panel_database)
    assert installed >= 15
    await prepare_panel(panel_database, panel_settings)
    assert await _blueprints(panel_database) == installed


@pytest.mark.redis
async def test_node_credentials_are_restored_when_redis_forgot_them(
    panel_database: Database, panel_settings: PanelSettings, redis_url: str
) -> None:
    token = new_node_token()
    async with panel_database.sessionmaker() as db:
        node = make_node()
        node.api_token_hash = token_hash(token)
        db.add(node)
        await db.commit()
        node_id = str(node.id)
    username = keys.node_acl_username(node_id)
    refused = RedisBroker(redis_url, username=username, password=token)
    with pytest.raises(Exception):  # noqa: B017 - no such user yet: any refusal will do
        await refused.ping()
    await refused.close()
    settings = panel_settings.model_copy(update={"redis_url": redis_url})
    await prepare_panel(panel_database, settings)
    restored = RedisBroker(redis_url, username=username, password=token)
    assert await restored.ping() >= 0
    await restored.close()
