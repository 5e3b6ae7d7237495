"""Loading blueprints from YAML files: the shipped catalogue and operators' directories.

`load_directory` reads every `*.yaml`/`*.yml` file of a folder (not following symlinks out of
it, skipping files over the size cap) and returns what loaded plus one `LoadProblem` per file
that did not, so one broken file never hides the others. Egg files (`*.json`, or YAML with an
egg's `meta.version`) found in a directory are imported through `eggs.import_egg`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from stellarstack.blueprints.eggs import ImportReport, detect_egg_format, import_egg, parse_document
from stellarstack.blueprints.errors import BlueprintError, InvalidBlueprint
from stellarstack.blueprints.model import Blueprint
from stellarstack.logs import get_logger

__all__ = [
    "CATALOG_DIR",
    "MAX_FILE_BYTES",
    "LoadProblem",
    "LoadResult",
    "Loaded",
    "load_catalog",
    "load_directory",
    "load_document",
    "load_file",
]

log = get_logger(__name__)

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
MAX_FILE_BYTES = 1024 * 1024
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILES = 2000


@dataclass(frozen=True, slots=True)
class Loaded:
    """One blueprint read from a document, with its origin, hash and (for eggs) the report."""

    blueprint: Blueprint
    origin: str
    sha256: str
    report: ImportReport | None = None


@dataclass(frozen=True, slots=True)
class LoadProblem:
    """A file that could not be loaded, and why."""

    origin: str
    message: str


@dataclass
class LoadResult:
    """Everything a directory yielded."""

    loaded: list[Loaded] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)


def load_document(text: str, *, origin: str, source_kind: str = "operator") -> Loaded:
    """A blueprint from one document: our YAML format, or an egg (JSON or YAML)."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    data = parse_document(text, origin=origin)
    if detect_egg_format(data) is not None or _looks_like_egg(data):
        # An egg of a format we do not know is refused by import_egg with the formats we do.
        blueprint, report = import_egg(data, origin=origin)
        return Loaded(blueprint, origin, digest, report)
    if isinstance(data, dict):
        data.setdefault("source", {})
        if isinstance(data["source"], dict):
            data["source"].setdefault("kind", source_kind)
            data["source"].setdefault("ref", origin)
    return Loaded(Blueprint.from_data(data, origin=origin), origin, digest)


def _looks_like_egg(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("meta"), dict) and "slug" not in data


def load_file(path: Path, *, source_kind: str = "operator") -> Loaded:
    """A blueprint from one file (size-capped, UTF-8)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidBlueprint(f"{path.name} is larger than {MAX_FILE_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidBlueprint(f"{path.name} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidBlueprint(f"{path.name} cannot be read: {exc.strerror}") from None
    return load_document(text, origin=path.name, source_kind=source_kind)


def _files(directory: Path) -> list[Path]:
    root = directory.resolve()
    found: list[Path] = []
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() not in SUFFIXES or ".git" in path.parts:
            continue
        try:
            real = path.resolve()
        except OSError:
            continue
        # A symlink that leads out of the directory is not the operator's blueprint.
        if not real.is_file() or not real.is_relative_to(root):
            continue
        found.append(path)
        if len(found) >= MAX_FILES:
            break
    return found


def _free_slug(slug: str, taken: dict[str, str]) -> str:
    """`slug-2`, `slug-3`, … : the first not in `taken` (within the slug length limit)."""
    for n in range(2, MAX_FILES + 2):
        candidate = f"{slug[:120]}-{n}"
        if candidate not in taken:
            return candidate
    raise BlueprintError(f"too many blueprints named {slug}")


def load_directory(directory: Path, *, source_kind: str = "operator") -> LoadResult:
    """Every blueprint (or egg) under a directory; broken files are listed, not fatal."""
    result = LoadResult()
    if not directory.is_dir():
        result.problems.append(LoadProblem(str(directory), "is not a directory"))
        return result
    seen: dict[str, str] = {}
    for path in _files(directory):
        origin = str(path.relative_to(directory))
        try:
            loaded = load_file(path, source_kind=source_kind)
        except (BlueprintError, yaml.YAMLError) as exc:
            result.problems.append(LoadProblem(origin, str(exc)))
            continue
        blueprint, slug = loaded.blueprint, loaded.blueprint.slug
        if slug in seen and loaded.report is not None:
            # Two eggs of one game (a Pterodactyl and a Pelican export): keep both, apart.
            blueprint = blueprint.model_copy(update={"slug": _free_slug(slug, seen)})
            loaded.report.warnings.append(
                f"{slug} is already defined by {seen[slug]}: imported as {blueprint.slug}"
            )
        elif slug in seen:
            result.problems.append(
                LoadProblem(origin, f"{slug} is already defined by {seen[slug]}")
            )
            continue
        seen[blueprint.slug] = origin
        result.loaded.append(Loaded(blueprint, origin, loaded.sha256, loaded.report))
    log.info(
        "blueprints.directory_loaded",
        directory=str(directory),
        loaded=len(result.loaded),
        problems=len(result.problems),
    )
    return result


@cache
def _catalog() -> tuple[tuple[Loaded, ...], tuple[LoadProblem, ...]]:
    result = load_directory(CATALOG_DIR, source_kind="builtin")
    return tuple(result.loaded), tuple(result.problems)


def load_catalog() -> LoadResult:
    """The blueprints shipped with StellarStack (read once per process: they never change)."""
    loaded, problems = _catalog()
    return LoadResult(list(loaded), list(problems))
