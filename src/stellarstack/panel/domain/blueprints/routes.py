"""`/api/v1/blueprints` and `/api/v1/admin/blueprints`: browse, import and sync blueprints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from stellarstack.panel.auth.permissions import platform_permissions, require_permission
from stellarstack.panel.auth.principal import Principal
from stellarstack.panel.db.enums import ActorType
from stellarstack.panel.db.models import User
from stellarstack.panel.deps import CurrentUser, DbSession, SettingsDep, client_ip
from stellarstack.panel.domain.audit.service import Actor, record
from stellarstack.panel.domain.blueprints import service
from stellarstack.panel.domain.blueprints.importing import import_document, sync_source
from stellarstack.panel.domain.blueprints.schemas import (
    MAX_DOCUMENT_CHARS,
    BlueprintDetail,
    BlueprintSummary,
    ImportRequest,
    ImportResult,
    SyncRequest,
    SyncResult,
    VersionOut,
)
from stellarstack.panel.errors import BadRequest, FieldError, ValidationFailed
from stellarstack.panel.schemas import Envelope, ok

__all__ = ["BlueprintAdmin", "read_import_request", "request_actor", "router"]

router = APIRouter(tags=["blueprints"])

# Sessions of admins and application API keys holding `platform.blueprints`.
BlueprintAdmin = Annotated[Principal, Depends(require_permission("platform.blueprints"))]


def request_actor(request: Request, user: User) -> Actor:
    """The audit actor of a signed-in user's request (pages)."""
    return Actor(ActorType.USER, str(user.id), user_id=user.id, ip=client_ip(request))


@router.get("/blueprints")
async def list_blueprints(
    user: CurrentUser,
    db: DbSession,
    search: Annotated[str | None, Query(max_length=100)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=200)] = 100,
) -> Envelope[list[BlueprintSummary]]:
    """List the blueprints users can deploy (search by name, filter by category)."""
    rows, total = await service.list_blueprints(
        db, search=search, category=category, offset=(page - 1) * per_page, limit=per_page
    )
    meta: dict[str, object] = {"page": page, "perPage": per_page, "total": total}
    return ok([BlueprintSummary.model_validate(r) for r in rows], meta)


@router.get("/blueprints/{ref}")
async def get_blueprint(ref: str, user: CurrentUser, db: DbSession) -> Envelope[BlueprintDetail]:
    """Get one blueprint by id or slug, with its variables' JSON Schema and versions."""
    row = await service.get_blueprint(db, ref)
    full = "platform.blueprints" in platform_permissions(user.role)
    return ok(service.blueprint_detail(row, full=full))


@router.get("/blueprints/{ref}/versions")
async def list_versions(ref: str, user: CurrentUser, db: DbSession) -> Envelope[list[VersionOut]]:
    """List a blueprint's versions, recommended and newest first."""
    row = await service.get_blueprint(db, ref)
    return ok([VersionOut.model_validate(v) for v in row.versions])


def _flag(value: object) -> bool:
    return isinstance(value, str) and value.lower() in {"1", "true", "on", "yes"}


async def read_import_request(request: Request) -> ImportRequest:
    """The import body: JSON `{document, …}`, or a multipart upload with a `file` field."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed([FieldError("file", "Choose an egg or blueprint file.")])
            raw = await upload.read(MAX_DOCUMENT_CHARS + 1)
            data: dict[str, Any] = {
                "document": raw.decode("utf-8"),
                "filename": upload.filename,
                "slug": form.get("slug") or None,
                "force": _flag(form.get("force")),
                "dryRun": _flag(form.get("dryRun")),
            }
        else:
            data = await request.json()
    except UnicodeDecodeError:
        raise ValidationFailed([FieldError("file", "The file is not UTF-8 text.")]) from None
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None
    try:
        return ImportRequest.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            [FieldError(".".join(map(str, e["loc"])) or "body", e["msg"]) for e in exc.errors()]
        ) from None


ImportBody = Annotated[ImportRequest, Depends(read_import_request)]
IMPORT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": ImportRequest.model_json_schema(by_alias=True)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "slug": {"type": "string"},
                        "force": {"type": "boolean"},
                        "dryRun": {"type": "boolean"},
                    },
                    "required": ["file"],
                }
            },
        },
        "required": True,
    }
}


@router.post("/admin/blueprints/import", openapi_extra=IMPORT_OPENAPI)
async def import_blueprint(
    principal: BlueprintAdmin,
    body: ImportBody,
    db: DbSession,  # who first: 401 before 422
) -> Envelope[ImportResult]:
    """Import a Pterodactyl/Pelican egg or a StellarStack blueprint; `dryRun` previews it."""
    result = await import_document(
        db,
        body.document,
        filename=body.filename,
        slug=body.slug,
        force=body.force,
        dry_run=body.dry_run,
    )
    if result.blueprint is not None:
        counts = (result.report or {}).get("counts")
        await record(
            db,
            principal.actor,
            "blueprint.import",
            "blueprint",
            result.blueprint.id,
            details={"slug": result.slug, "outcome": result.outcome, "counts": counts},
        )
    return ok(result)


@router.post("/admin/blueprints/sync")
async def sync_blueprints(
    body: SyncRequest, principal: BlueprintAdmin, db: DbSession, settings: SettingsDep
) -> Envelope[SyncResult]:
    """Sync blueprints from a URL, a git repository or the operator's directory."""
    summary = await sync_source(
        db, settings, source=body.source, url=body.url, ref=body.ref, force=body.force
    )
    await record(
        db,
        principal.actor,
        "blueprint.sync",
        "blueprint",
        None,
        details={
            "source": body.source,
            "url": body.url,
            "created": len(summary.created),
            "updated": len(summary.updated),
            "problems": len(summary.problems),
        },
    )
    return ok(summary.result())
