"""Blueprints in the database: look-ups, and the one upsert every source goes through.

`save_blueprint` stores a parsed `Blueprint` in the `blueprints` row of its slug (columns for
lists and placement, the whole definition in `definition`) and makes its versions match. A
blueprint from one source never silently replaces one from another (an egg import does not
overwrite the shipped Minecraft blueprint): that needs `force`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from stellarstack.blueprints.egg_report import ImportReport
from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.blueprints.model import Version
from stellarstack.panel.db.enums import BlueprintSource
from stellarstack.panel.db.models import Blueprint, BlueprintVersion
from stellarstack.panel.domain.blueprints.schemas import (
    BlueprintDetail,
    BlueprintSummary,
    VersionOut,
)
from stellarstack.panel.errors import Conflict, NotFound

__all__ = [
    "Saved",
    "blueprint_detail",
    "count_by_category",
    "find_blueprint",
    "get_blueprint",
    "list_blueprints",
    "save_blueprint",
    "spec_of",
]

MAX_ICON_COLUMN = 2048
Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class Saved:
    """The stored row and what happened to it."""

    row: Blueprint
    outcome: Outcome


def _versions_of(spec: BlueprintSpec) -> list[Version]:
    # Every blueprint offers at least one version to pick (eggs have none of their own).
    return spec.versions or [Version(tag="latest", name="Latest", recommended=True)]


async def find_blueprint(db: AsyncSession, ref: str) -> Blueprint | None:
    """A blueprint by UUID or slug (with its versions), or None."""
    if len(ref) > 128:
        return None
    try:
        condition = Blueprint.id == uuid.UUID(ref)
    except ValueError:
        condition = Blueprint.slug == ref.lower()
    query = select(Blueprint).options(selectinload(Blueprint.versions)).where(condition)
    return (await db.execute(query)).scalar_one_or_none()


async def get_blueprint(db: AsyncSession, ref: str, *, include_disabled: bool = False) -> Blueprint:
    """A blueprint by UUID or slug; 404 when there is none (or it is disabled)."""
    row = await find_blueprint(db, ref)
    if row is None or (not row.enabled and not include_disabled):
        raise NotFound(f"There is no blueprint {ref!r}.")
    return row


async def list_blueprints(
    db: AsyncSession,
    *,
    search: str | None = None,
    category: str | None = None,
    include_disabled: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[Blueprint], int]:
    """Blueprints by name, filtered by a search text and a category; and the total."""
    query = select(Blueprint)
    if not include_disabled:
        query = query.where(Blueprint.enabled.is_(True))
    if category:
        query = query.where(Blueprint.category == category.lower())
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        query = query.where(
            or_(
                func.lower(Blueprint.name).like(pattern, escape="\\"),
                func.lower(Blueprint.slug).like(pattern, escape="\\"),
                func.lower(Blueprint.category).like(pattern, escape="\\"),
            )
        )
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(query.order_by(Blueprint.name).offset(offset).limit(limit))
    return list(rows.scalars()), int(total)


async def count_by_category(db: AsyncSession) -> dict[str, int]:
    """How many enabled blueprints each category holds."""
    rows = await db.execute(
        select(Blueprint.category, func.count())
        .where(Blueprint.enabled.is_(True))
        .group_by(Blueprint.category)
        .order_by(Blueprint.category)
    )
    return {str(category): int(n) for category, n in rows.all()}


def spec_of(row: Blueprint) -> BlueprintSpec:
    """The parsed blueprint stored in a row."""
    return BlueprintSpec.from_data(row.definition, origin=row.slug)


def _apply(row: Blueprint, spec: BlueprintSpec) -> None:
    row.name = spec.name
    row.description = spec.description
    row.category = spec.category
    row.icon = spec.icon if spec.icon and len(spec.icon) <= MAX_ICON_COLUMN else None
    row.docker_image = spec.docker.image
    row.default_memory_mb = spec.resources.memory_mb
    row.default_cpu = spec.resources.cpu
    row.default_disk_mb = spec.resources.disk_mb
    row.config_schema = spec.json_schema()
    row.definition = spec.to_data()


async def _sync_versions(db: AsyncSession, row: Blueprint, spec: BlueprintSpec) -> None:
    existing = {v.tag: v for v in row.versions}
    wanted = _versions_of(spec)
    for stale in set(existing) - {v.tag for v in wanted}:
        row.versions.remove(existing[stale])
    await db.flush()
    for position, version in enumerate(wanted):
        target = existing.get(version.tag)
        if target is None:
            target = BlueprintVersion(tag=version.tag)
            row.versions.append(target)
        target.name = version.name or version.tag
        target.docker_image = version.image
        target.recommended = version.recommended
        target.channel = version.channel
        target.deprecation_notice = version.deprecation_notice
        target.min_daemon_version = version.min_daemon_version
        target.position = position


async def save_blueprint(
    db: AsyncSession,
    spec: BlueprintSpec,
    *,
    source: BlueprintSource,
    source_ref: str | None,
    source_hash: str | None,
    report: ImportReport | None = None,
    force: bool = False,
) -> Saved:
    """Create or update the blueprint of `spec.slug`; 409 when another source owns the slug."""
    row = await find_blueprint(db, spec.slug)
    if row is not None and row.source != source and not force:
        raise Conflict(
            f"The blueprint {spec.slug!r} already exists ({row.source.value}); choose another "
            "slug, or force the import to replace it."
        )
    if row is not None and row.source_hash == source_hash and source_hash and not force:
        return Saved(row, "unchanged")
    outcome: Outcome = "updated" if row is not None else "created"
    if row is None:
        row = Blueprint(slug=spec.slug, versions=[])
        db.add(row)
    _apply(row, spec)
    row.source = source
    row.source_ref = source_ref[:2048] if source_ref else None
    row.source_hash = source_hash
    row.import_report = report.to_data() if report is not None else None
    await _sync_versions(db, row, spec)
    await db.flush()
    return Saved(row, outcome)


def _hide_locked(definition: dict[str, Any]) -> dict[str, Any]:
    # Variables users may not see can hold operator secrets (licence keys) in their defaults.
    variables = definition.get("variables", [])
    visible = [v for v in variables if isinstance(v, dict) and v.get("user_viewable", True)]
    return {**definition, "variables": visible}


def blueprint_detail(row: Blueprint, *, full: bool = True) -> BlueprintDetail:
    """The API view of a blueprint with its versions; `full=False` hides unviewable variables."""
    summary = BlueprintSummary.model_validate(row)
    data = summary.model_dump()
    if data["icon"] is None:
        icon = row.definition.get("icon")
        data["icon"] = icon if isinstance(icon, str) else None
    return BlueprintDetail(
        **data,
        config_schema=row.config_schema,
        definition=row.definition if full else _hide_locked(row.definition),
        source_ref=row.source_ref,
        import_report=row.import_report,
        versions=[VersionOut.model_validate(v) for v in row.versions],
    )
