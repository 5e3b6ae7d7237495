"""Getting blueprints into the database: the shipped catalogue, egg imports and syncs.

`install_catalog(database, settings)` is what the panel calls at start: it upserts the shipped
blueprints and the operator's directory, skipping unchanged ones by hash, so running it on
every start (and on several replicas at once) is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stellarstack.blueprints.errors import BlueprintError
from stellarstack.blueprints.loader import (
    LoadResult,
    load_catalog,
    load_directory,
    load_document,
)
from stellarstack.blueprints.sync import SyncOptions, clone_and_load, fetch_document
from stellarstack.logs import get_logger
from stellarstack.panel.db.enums import BlueprintSource
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.blueprints.schemas import ImportResult, SyncResult
from stellarstack.panel.domain.blueprints.service import (
    blueprint_detail,
    find_blueprint,
    save_blueprint,
)
from stellarstack.panel.errors import BadRequest, Conflict, FieldError, ValidationFailed
from stellarstack.settings import PanelSettings

__all__ = [
    "CatalogSummary",
    "import_document",
    "install_catalog",
    "operator_directory",
    "save_loaded",
    "sync_options",
    "sync_source",
]

log = get_logger(__name__)


@dataclass
class CatalogSummary:
    """What a load into the database did, by slug."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    def result(self) -> SyncResult:
        """The API view."""
        return SyncResult(
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            skipped=self.skipped,
            problems=self.problems,
        )


def operator_directory(settings: PanelSettings) -> Path | None:
    """The operator's blueprint folder, when configured or present in the data dir."""
    if settings.blueprints_dir is not None:
        return settings.blueprints_dir
    default = settings.data_dir / "blueprints"
    return default if default.is_dir() else None


def sync_options(settings: PanelSettings) -> SyncOptions:
    """The sync limits from the settings."""
    return SyncOptions(
        max_bytes=settings.blueprint_sync_max_bytes,
        timeout=settings.blueprint_sync_timeout,
        allow_http=settings.blueprint_sync_allow_http,
        allow_private=settings.blueprint_sync_allow_private,
    )


async def save_loaded(
    db: AsyncSession,
    result: LoadResult,
    summary: CatalogSummary,
    *,
    default_source: BlueprintSource,
    force: bool = False,
) -> None:
    """Upsert every loaded blueprint; slugs owned by another source are skipped, not fatal."""
    for problem in result.problems:
        summary.problems.append({"origin": problem.origin, "message": problem.message})
    for loaded in result.loaded:
        spec = loaded.blueprint
        source = BlueprintSource.EGG if loaded.report is not None else default_source
        try:
            saved = await save_blueprint(
                db,
                spec,
                source=source,
                source_ref=spec.source.ref or loaded.origin,
                source_hash=loaded.sha256,
                report=loaded.report,
                force=force,
            )
        except Conflict as exc:
            summary.skipped.append(spec.slug)
            summary.problems.append({"origin": loaded.origin, "message": str(exc.detail)})
            continue
        getattr(summary, saved.outcome).append(spec.slug)


async def install_catalog(
    database: Database, settings: PanelSettings | None = None
) -> CatalogSummary:
    """Load the shipped blueprints (and the operator's folder) into the database; idempotent."""
    results = [(load_catalog(), BlueprintSource.BUILTIN)]
    directory = operator_directory(settings) if settings is not None else None
    if directory is not None:
        results.append((load_directory(directory), BlueprintSource.OPERATOR))
    for attempt in (1, 2):
        summary = CatalogSummary()
        try:
            async with database.sessionmaker() as db:
                for result, source in results:
                    await save_loaded(db, result, summary, default_source=source)
                await db.commit()
        except IntegrityError:
            # Another replica inserted the same slugs first; the second pass sees its rows.
            if attempt == 2:
                raise
            continue
        break
    log.info(
        "blueprints.catalog_installed",
        created=len(summary.created),
        updated=len(summary.updated),
        unchanged=len(summary.unchanged),
        problems=len(summary.problems),
    )
    return summary


def _invalid(exc: BlueprintError) -> ValidationFailed:
    problems = getattr(exc, "problems", None) or [("document", str(exc))]
    return ValidationFailed(
        [FieldError(f"document.{path}", message) for path, message in problems[:50]],
        detail=str(exc)[:1000],
    )


async def import_document(
    db: AsyncSession,
    text: str,
    *,
    filename: str | None,
    slug: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> ImportResult:
    """Import one egg or blueprint document; a dry run validates and reports but saves nothing."""
    origin = (filename or "upload")[:255]
    try:
        loaded = load_document(text, origin=origin, source_kind="operator")
        spec = loaded.blueprint
        if slug:
            spec = spec.model_copy(update={"slug": slug})
    except BlueprintError as exc:
        raise _invalid(exc) from None
    report = loaded.report.to_data() if loaded.report is not None else None
    existing = await find_blueprint(db, spec.slug)
    if dry_run:
        return ImportResult(
            slug=spec.slug,
            name=spec.name,
            outcome="preview",
            exists=existing is not None,
            blueprint=None,
            definition=spec.to_data(),
            report=report,
        )
    source = BlueprintSource.EGG if loaded.report is not None else BlueprintSource.OPERATOR
    saved = await save_blueprint(
        db,
        spec,
        source=source,
        source_ref=origin,
        source_hash=loaded.sha256,
        report=loaded.report,
        force=force,
    )
    return ImportResult(
        slug=spec.slug,
        name=spec.name,
        outcome=saved.outcome,
        exists=existing is not None,
        blueprint=blueprint_detail(saved.row),
        definition=spec.to_data(),
        report=report,
    )


async def sync_source(
    db: AsyncSession,
    settings: PanelSettings,
    *,
    source: str,
    url: str | None,
    ref: str | None,
    force: bool,
) -> CatalogSummary:
    """Sync from a URL (one document), a git repository, or the operator's directory."""
    options = sync_options(settings)
    summary = CatalogSummary()
    try:
        if source == "directory":
            directory = operator_directory(settings)
            if directory is None:
                raise BadRequest("No operator blueprint directory is configured.")
            result = load_directory(directory)
            kind = BlueprintSource.OPERATOR
        elif not url:
            raise ValidationFailed([FieldError("url", "A URL is needed for this source.")])
        elif source == "git":
            result = await clone_and_load(url, options, ref=ref)
            kind = BlueprintSource.GIT
        else:
            document = await fetch_document(url, options)
            result = LoadResult(loaded=[load_document(document.text, origin=document.url)])
            kind = BlueprintSource.GIT
    except BlueprintError as exc:
        raise ValidationFailed([FieldError("url", str(exc))], detail=str(exc)) from None
    await save_loaded(db, result, summary, default_source=kind, force=force)
    return summary
