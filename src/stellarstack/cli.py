"""The `stellarstack` command: run the panel, the daemon, migrations and admin tasks."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stellarstack import __version__
from stellarstack.logs import configure_logging
from stellarstack.settings import DaemonSettings, PanelSettings

if TYPE_CHECKING:
    from stellarstack.blueprints.loader import Loaded as LoadedBlueprint
    from stellarstack.blueprints.loader import LoadResult
    from stellarstack.panel.bootstrap import AdminCredentials

# Commands import the panel and daemon lazily, so `--help` and `--version` answer at once.

__all__ = ["app", "main"]

app = typer.Typer(
    name="stellarstack",
    help="StellarStack: deploy and run game servers across your own machines.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")

HostOpt = Annotated[str | None, typer.Option(help="Address to listen on.")]
PortOpt = Annotated[int | None, typer.Option(help="Port to listen on.", min=1, max=65535)]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (STELLAR_DATA_DIR).")
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _panel_settings(host: str | None, port: int | None, data_dir: Path | None) -> PanelSettings:
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    if data_dir:
        overrides["data_dir"] = data_dir
    try:
        return PanelSettings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(f"invalid configuration: {exc}") from exc


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stellarstack {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """StellarStack: deploy and run game servers across your own machines."""


def _announce(url: str, credentials: AdminCredentials | None) -> None:
    typer.secho(f"\n  StellarStack {__version__} is running at {url}", bold=True)
    if credentials:
        typer.echo("  First admin account (shown once; change the password after signing in):")
        typer.secho(f"    email:    {credentials.email}", fg=typer.colors.GREEN)
        typer.secho(f"    password: {credentials.password}", fg=typer.colors.GREEN)
    typer.echo("  Press Ctrl-C to stop.\n")


@app.command()
def up(host: HostOpt = None, port: PortOpt = None, data_dir: DataDirOpt = None) -> None:
    """Run everything on this machine: panel, local node daemon, SQLite, in-process broker."""
    from stellarstack.embedded import run_embedded
    from stellarstack.serve import PortInUse

    settings = _panel_settings(host, port, data_dir)
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        asyncio.run(run_embedded(settings, _announce))
    except PortInUse as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@app.command()
def panel(
    host: HostOpt = None,
    port: PortOpt = None,
    data_dir: DataDirOpt = None,
    migrate: Annotated[
        bool, typer.Option(help="Upgrade the database schema before starting.")
    ] = False,
) -> None:
    """Run the panel alone (production: DATABASE_URL, REDIS_URL, several replicas)."""
    from stellarstack.panel.app import create_app
    from stellarstack.panel.bootstrap import StartupError, ensure_data_dir, preflight
    from stellarstack.panel.db import migrate as migrations
    from stellarstack.panel.db.session import Database
    from stellarstack.panel.startup import prepare_panel
    from stellarstack.serve import PortInUse, listen, run_until_signalled

    settings = _panel_settings(host, port, data_dir)
    configure_logging(settings.log_level, json=settings.log_json)

    async def run() -> None:
        ensure_data_dir(settings)
        if migrate:
            await preflight(settings, require_head=False)
            await migrations.upgrade(settings.effective_database_url)
        await preflight(settings)
        database = Database(settings.effective_database_url)
        try:
            await prepare_panel(database, settings)
        finally:
            await database.dispose()
        listener = listen(create_app(settings), settings.host, settings.port)
        await run_until_signalled([listener])

    try:
        asyncio.run(run())
    except (StartupError, PortInUse) as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        pass


daemon_app = typer.Typer(
    help="Run the node daemon, or register this machine with a panel.", rich_markup_mode=None
)
app.add_typer(daemon_app, name="daemon")


def _default_daemon_paths() -> tuple[Path, Path]:
    """Config file and data directory: system paths as root, per-user paths otherwise."""
    if os.geteuid() == 0:
        return Path("/etc/stellarstack/daemon.toml"), Path("/var/lib/stellarstack")
    settings = DaemonSettings()
    return settings.data_dir.parent / "daemon.toml", settings.data_dir


def _run_daemon(settings: DaemonSettings) -> None:
    from stellarstack.daemon.errors import DaemonStartError
    from stellarstack.daemon.service import run_daemon
    from stellarstack.serve import PortInUse

    configure_logging("info")
    try:
        asyncio.run(run_daemon(settings))
    except (PortInUse, DaemonStartError) as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        pass


@daemon_app.callback(invoke_without_command=True)
def daemon(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="Daemon config file (TOML).", exists=True, dir_okay=False)
    ] = None,
) -> None:
    """Run the node daemon: game servers in Docker or as processes, driven by the panel."""
    if ctx.invoked_subcommand is not None:
        return
    _run_daemon(DaemonSettings.from_file(config) if config else DaemonSettings())


@daemon_app.command("register")
def daemon_register(
    panel_url: Annotated[str, typer.Option("--panel", help="The panel's URL.")],
    token: Annotated[
        str,
        typer.Option(
            envvar="STELLAR_REGISTRATION_TOKEN",
            help='Registration token (strk_reg_…) from the panel\'s "add node" page.',
        ),
    ],
    config: Annotated[
        Path | None, typer.Option(help="Where to write the config (and keys beside it).")
    ] = None,
    data_dir: DataDirOpt = None,
    hostname: Annotated[
        str | None, typer.Option(help="Address the panel reaches this node at (detected).")
    ] = None,
    port: Annotated[int, typer.Option(help="Daemon HTTPS port.", min=1, max=65535)] = 5000,
    listen_host: Annotated[str, typer.Option(help="Address the daemon listens on.")] = "0.0.0.0",
    force: Annotated[bool, typer.Option(help="Replace an existing registration.")] = False,
    start: Annotated[bool, typer.Option(help="Start the daemon once registered.")] = True,
) -> None:
    """Register this machine as a node with a one-time token, write its config, and start."""
    from stellarstack.daemon.registration import RegistrationError, register_node

    default_config, default_data = _default_daemon_paths()
    config_file = config or default_config
    configure_logging("warning")
    try:
        done = asyncio.run(
            register_node(
                panel_url,
                token,
                config_file=config_file,
                data_dir=data_dir or default_data,
                hostname=hostname,
                port=port,
                listen_host=listen_host,
                force=force,
            )
        )
    except RegistrationError as exc:
        raise _fail(str(exc)) from exc
    typer.secho(f"registered node {done.node_id}; config written to {done.config_file}", bold=True)
    if start:
        _run_daemon(DaemonSettings.from_file(done.config_file))


@app.command(name="migrate")
def migrate_cmd(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[
        bool, typer.Option("--downgrade", help="Downgrade to REVISION instead.")
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Upgrade (or downgrade) the database schema."""
    from stellarstack.panel.bootstrap import StartupError, ensure_data_dir, preflight, safe_url
    from stellarstack.panel.db import migrate as migrations

    settings = _panel_settings(None, None, data_dir)
    configure_logging(settings.log_level, json=settings.log_json)
    url = settings.effective_database_url

    async def run() -> str | None:
        ensure_data_dir(settings)
        await preflight(settings, require_head=False)
        if downgrade:
            await migrations.downgrade(url, revision)
        else:
            await migrations.upgrade(url, revision)
        return await migrations.current(url)

    try:
        at = asyncio.run(run())
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{safe_url(url)} is at revision {at}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(prompt=True, help="Email address (the sign-in name).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    role: Annotated[
        str, typer.Option(help="user, support, moderator, admin or super_admin.")
    ] = "user",
    password: Annotated[
        str | None, typer.Option(help="Password; a random one is generated and shown if omitted.")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a user account."""
    from stellarstack.panel.auth.service import create_user, find_user_by_email
    from stellarstack.panel.bootstrap import StartupError, ensure_data_dir, preflight
    from stellarstack.panel.db.enums import Role
    from stellarstack.panel.db.session import Database

    try:
        chosen_role = Role(role.lower())
    except ValueError as exc:
        raise _fail(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}"
        ) from exc
    if "@" not in email or len(email) > 320:
        raise _fail(f"{email!r} is not an email address")
    if password is not None and len(password) < 8:
        raise _fail("the password must be at least 8 characters long")
    secret = password or secrets.token_urlsafe(12)
    settings = _panel_settings(None, None, data_dir)
    configure_logging("warning")

    async def run() -> None:
        ensure_data_dir(settings)
        await preflight(settings)
        database = Database(settings.effective_database_url)
        try:
            async with database.sessionmaker() as db:
                if await find_user_by_email(db, email):
                    raise StartupError(f"a user with the email {email} already exists")
                await create_user(db, email, secret, name=name, role=chosen_role)
                await db.commit()
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"created {chosen_role.value} {email.strip().lower()}")
    if password is None:
        typer.echo(f"password: {secret}")


# --- blueprint: import eggs and blueprints, list the catalogue (owned by the blueprints work) ---

blueprint_app = typer.Typer(
    help="Import and list blueprints (game templates).", no_args_is_help=True
)
app.add_typer(blueprint_app, name="blueprint")


def _print_loaded(loaded: LoadedBlueprint) -> None:
    report = loaded.report
    line = f"  {loaded.blueprint.slug:<28} {loaded.blueprint.name[:40]:<40} {loaded.origin}"
    if report is None:
        typer.echo(line)
        return
    counts = report.counts
    typer.echo(
        f"{line}\n    {report.format}: {counts['mapped']} mapped, {counts['unmapped']} unmapped, "
        f"{counts['warnings']} warnings"
    )
    for item in report.unmapped:
        typer.echo(f"    unmapped {item.path}: {item.reason}")
    for warning in report.warnings:
        typer.echo(f"    warning  {warning}")


def _load_source(source: str, settings: PanelSettings) -> LoadResult:
    from stellarstack.blueprints.errors import BlueprintError
    from stellarstack.blueprints.loader import LoadResult, load_directory, load_document, load_file
    from stellarstack.blueprints.sync import fetch_document
    from stellarstack.panel.domain.blueprints.importing import sync_options

    try:
        if source.startswith(("http://", "https://")):
            document = asyncio.run(fetch_document(source, sync_options(settings)))
            return LoadResult([load_document(document.text, origin=document.url)])
        path = Path(source)
        if path.is_dir():
            return load_directory(path)
        if path.is_file():
            return LoadResult([load_file(path)])
    except BlueprintError as exc:
        raise _fail(str(exc)) from exc
    raise _fail(f"{source} is not a file, a directory or an http(s) URL")


@blueprint_app.command("import")
def blueprint_import(
    source: Annotated[str, typer.Argument(help="An egg or blueprint file, a folder, or a URL.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be imported; save nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace blueprints of another source.")
    ] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Import Pterodactyl/Pelican eggs or StellarStack blueprints, printing what was not mapped."""
    from stellarstack.panel.bootstrap import StartupError, ensure_data_dir, preflight
    from stellarstack.panel.db.enums import BlueprintSource
    from stellarstack.panel.db.session import Database
    from stellarstack.panel.domain.blueprints.importing import (
        CatalogSummary,
        install_catalog,
        save_loaded,
    )

    settings = _panel_settings(None, None, data_dir)
    configure_logging("warning")
    result = _load_source(source, settings)
    for loaded in result.loaded:
        _print_loaded(loaded)
    for problem in result.problems:
        typer.secho(f"  failed {problem.origin}: {problem.message}", fg=typer.colors.RED)
    unmapped = sum(len(x.report.unmapped) for x in result.loaded if x.report is not None)
    eggs = sum(1 for x in result.loaded if x.report is not None)
    typer.echo(
        f"read {len(result.loaded)} blueprint(s) ({eggs} from eggs, {unmapped} unmapped "
        f"field(s)), {len(result.problems)} failed"
    )
    if dry_run or not result.loaded:
        if not result.loaded:
            raise typer.Exit(1)
        return
    summary = CatalogSummary()

    async def run() -> None:
        ensure_data_dir(settings)
        await preflight(settings)
        database = Database(settings.effective_database_url)
        try:
            # The shipped blueprints first, so an egg cannot quietly take one of their slugs.
            await install_catalog(database, settings)
            async with database.sessionmaker() as db:
                await save_loaded(
                    db, result, summary, default_source=BlueprintSource.OPERATOR, force=force
                )
                await db.commit()
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    for refusal in summary.problems[len(result.problems) :]:
        typer.secho(f"  skipped {refusal['origin']}: {refusal['message']}", fg=typer.colors.YELLOW)
    typer.echo(
        f"saved: {len(summary.created)} created, {len(summary.updated)} updated, "
        f"{len(summary.unchanged)} unchanged, {len(summary.skipped)} skipped"
    )


@blueprint_app.command("list")
def blueprint_list(data_dir: DataDirOpt = None) -> None:
    """List the blueprints in the panel's database."""
    from stellarstack.panel.bootstrap import StartupError, ensure_data_dir, preflight
    from stellarstack.panel.db.session import Database
    from stellarstack.panel.domain.blueprints.service import list_blueprints

    settings = _panel_settings(None, None, data_dir)
    configure_logging("warning")

    async def run() -> list[tuple[str, str, str, str]]:
        ensure_data_dir(settings)
        await preflight(settings)
        database = Database(settings.effective_database_url)
        try:
            async with database.sessionmaker() as db:
                rows, _ = await list_blueprints(db, include_disabled=True, limit=10_000)
                return [(r.slug, r.name, r.category, r.source.value) for r in rows]
        finally:
            await database.dispose()

    try:
        rows = asyncio.run(run())
    except StartupError as exc:
        raise _fail(str(exc)) from exc
    for slug, name, category, source in rows:
        typer.echo(f"{slug:<28} {name[:40]:<40} {category:<12} {source}")
    typer.echo(f"{len(rows)} blueprint(s)")


def main() -> None:
    """Entry point of the `stellarstack` console script."""
    app()
