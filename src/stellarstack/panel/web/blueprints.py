"""Blueprint pages: the catalogue, a blueprint's detail, and for admins import (eggs) and sync.

Import is two steps: the pasted or uploaded document is previewed (the blueprint it becomes
and the egg report), then saved from the preview. The forms post through htmx, which sends the
CSRF header (file uploads cannot carry the form token), and get an HTML fragment back.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from stellarstack.blueprints.model import Blueprint as BlueprintSpec
from stellarstack.blueprints.startup import display
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, DbSession, SettingsDep
from stellarstack.panel.domain.audit.service import record
from stellarstack.panel.domain.blueprints import service
from stellarstack.panel.domain.blueprints.importing import import_document, sync_source
from stellarstack.panel.domain.blueprints.routes import request_actor
from stellarstack.panel.domain.blueprints.schemas import MAX_DOCUMENT_CHARS, ImportResult
from stellarstack.panel.errors import Conflict, Forbidden, ValidationFailed
from stellarstack.panel.web.flash import Flash, set_flashes
from stellarstack.panel.web.page_route import PageRoute
from stellarstack.panel.web.templating import is_admin, render

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SYNC_SOURCES = {"url": "A URL (one file)", "git": "A git repository", "directory": "Folder"}


async def require_admin(user: CurrentUser) -> User:
    """The signed-in user when they are an admin; 403 otherwise."""
    if not is_admin(user):
        raise Forbidden("Only administrators can import or sync blueprints.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


def monogram(name: str) -> str:
    """Two letters for a game without an icon (`Counter-Strike 2` → `CS`, Paper → `PA`)."""
    if name.startswith("Minecraft"):
        inner = re.search(r"\(([^)]+)\)", name)
        name = inner.group(1) if inner else name.partition(": ")[2] or name
    words = [w for w in re.split(r"[\s:\-]+", re.sub(r"\([^)]*\)", "", name)) if w]
    if len(words) >= 2:
        return (words[0][0] + words[1][0]).upper()
    return (words[0][:2] if words else "?").upper()


def _page(request: Request, name: str, **context: Any) -> Response:
    return render(request, name, monogram=monogram, **context)


@router.get("/blueprints")
async def catalogue(
    request: Request,
    user: CurrentUser,
    db: DbSession,
    q: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Every game this panel can deploy, searchable and grouped by category."""
    rows, total = await service.list_blueprints(db, search=q, category=category, limit=500)
    categories = await service.count_by_category(db)
    specs = {row.slug: row.definition for row in rows}
    return _page(
        request,
        "blueprints/catalog.html",
        user=user,
        blueprints=rows,
        definitions=specs,
        total=total,
        categories=categories,
        q=q or "",
        category=category or "",
    )


@router.get("/blueprints/import")
async def import_page(request: Request, user: AdminUser) -> Response:
    """Paste or upload an egg or blueprint, and sync from elsewhere (admins)."""
    return _page(request, "blueprints/import.html", user=user, sources=SYNC_SOURCES)


async def _document(form: FormData) -> tuple[str, str | None, str | None]:
    """The document from an upload or the text area, its file name, and an error."""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_DOCUMENT_CHARS + 1)
        if len(raw) > MAX_DOCUMENT_CHARS:
            return "", upload.filename, "The file is larger than 1 MiB."
        try:
            return raw.decode("utf-8"), upload.filename, None
        except UnicodeDecodeError:
            return "", upload.filename, "The file is not UTF-8 text."
    text = form.get("document")
    filename = form.get("filename")
    if not isinstance(text, str) or not text.strip():
        return "", None, "Paste an egg or a blueprint, or choose a file."
    return text, filename if isinstance(filename, str) and filename else None, None


def _preview_context(result: ImportResult) -> dict[str, Any]:
    spec = BlueprintSpec.from_data(result.definition, origin=result.slug)
    command = spec.startup.command or ""
    values = {v.env: v.default for v in spec.variables}
    return {
        "result": result,
        "spec": spec,
        "command": display(command, values, builtins=spec.known_variables()) if command else "",
    }


@router.post("/blueprints/import")
async def import_submit(request: Request, user: AdminUser, db: DbSession) -> Response:
    """Preview a document (the default) or save it (`action=save`)."""
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_DOCUMENT_CHARS + 1)
    text, filename, error = await _document(form)
    slug = form.get("slug")
    slug = slug.strip() if isinstance(slug, str) and slug.strip() else None
    save = form.get("action") == "save"
    context: dict[str, Any] = {"document": text, "filename": filename or "", "slug": slug or ""}
    if error is None:
        try:
            result = await import_document(
                db,
                text,
                filename=filename,
                slug=slug,
                force=form.get("force") == "on",
                dry_run=not save,
            )
        except ValidationFailed as exc:
            error = exc.detail or "This is not a valid egg or blueprint."
            context["problems"] = [f"{e.field}: {e.message}" for e in exc.errors][:20]
        except Conflict as exc:
            error = exc.detail
        else:
            if save and result.blueprint is not None:
                await record(
                    db,
                    request_actor(request, user),
                    "blueprint.import",
                    "blueprint",
                    result.blueprint.id,
                    details={"slug": result.slug, "outcome": result.outcome},
                )
                response = Response(status_code=204)
                response.headers["HX-Redirect"] = f"/blueprints/{result.slug}"
                set_flashes(response, request, Flash(f"Imported {result.name}.", "success"))
                return response
            context.update(_preview_context(result))
    context["error"] = error
    return _page(request, "blueprints/_import_result.html", user=user, **context)


@router.post("/blueprints/sync")
async def sync_submit(
    request: Request, user: AdminUser, db: DbSession, settings: SettingsDep
) -> Response:
    """Sync from a URL, a git repository or the operator's folder, and show what changed."""
    form = await request.form(max_fields=10)
    source = str(form.get("source") or "")
    url = str(form.get("url") or "").strip() or None
    ref = str(form.get("ref") or "").strip() or None
    context: dict[str, Any] = {"sources": SYNC_SOURCES, "sync_url": url or "", "sync_ref": ref}
    if source not in SYNC_SOURCES:
        context["sync_error"] = "Choose where to sync from."
        return _page(request, "blueprints/import.html", user=user, status_code=422, **context)
    try:
        summary = await sync_source(
            db, settings, source=source, url=url, ref=ref, force=form.get("force") == "on"
        )
    except ValidationFailed as exc:
        message = exc.errors[0].message if exc.errors else exc.detail
        context["sync_error"] = message
        return _page(request, "blueprints/import.html", user=user, status_code=422, **context)
    await record(
        db,
        request_actor(request, user),
        "blueprint.sync",
        "blueprint",
        None,
        details={"source": source, "url": url, "created": len(summary.created)},
    )
    context["sync"] = summary
    return _page(request, "blueprints/import.html", user=user, **context)


@router.get("/blueprints/{slug}")
async def detail(request: Request, user: CurrentUser, db: DbSession, slug: str) -> Response:
    """One blueprint: versions, variables, ports, startup and (for eggs) the import report."""
    row = await service.get_blueprint(db, slug)
    spec = service.spec_of(row)
    command = spec.startup.command or ""
    values = {v.env: v.default for v in spec.variables}
    return _page(
        request,
        "blueprints/detail.html",
        user=user,
        row=row,
        spec=spec,
        command=display(command, values, builtins=spec.known_variables()) if command else "",
    )
