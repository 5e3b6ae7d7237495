"""Settings for the panel and the daemon: environment variables, `.env` and a TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["DaemonSettings", "PanelSettings", "default_data_dir"]


def default_data_dir() -> Path:
    """Where the embedded default keeps its database, keys and server files."""
    env = os.environ.get("STELLAR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "stellarstack"


class PanelSettings(BaseSettings):
    """Configuration of the panel (control plane)."""

    model_config = SettingsConfigDict(env_prefix="STELLAR_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "STELLAR_DATABASE_URL"),
        description="SQLAlchemy URL; empty means SQLite in the data directory.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "STELLAR_REDIS_URL"),
        description="Redis URL; empty means the in-process broker (single process only).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="URL browsers use to reach the panel.")
    secret_key: str | None = Field(default=None, description="Signs cookies; generated if empty.")
    trusted_proxies: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_level: str = "info"
    log_json: bool = False
    dependency_timeout: float = Field(default=2.0, gt=0, description="Seconds per health probe.")

    # --- identity: accounts, email, sessions, rate limits (owned by the accounts work) ---
    signup_policy: Literal["open", "invite", "closed"] = Field(
        default="closed", description="Who may create an account: anyone, invitees, or nobody."
    )
    require_email_verification: bool = Field(
        default=True, description="Refuse sign-in until the address is verified."
    )
    smtp_host: str | None = Field(default=None, description="Empty: links are logged, not sent.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = "StellarStack <noreply@stellarstack.local>"
    rate_limit_api_client: str = Field(default="720/minute", description="Per user or API key.")
    rate_limit_api_admin: str = Field(default="240/minute", description="Per admin or app key.")
    rate_limits: dict[str, str] = Field(
        default_factory=dict, description='Overrides, e.g. {"sign_in.ip": "30/minute"}.'
    )

    # --- identity: two-factor and OAuth providers (owned by the 2FA/OAuth work) ---
    totp_issuer: str = Field(default="StellarStack", description="Name shown in authenticators.")
    oauth_github_client_id: str | None = None
    oauth_github_client_secret: str | None = None
    oauth_github_url: str = Field(default="https://github.com", description="GitHub (Enterprise).")
    oauth_github_api_url: str = "https://api.github.com"
    oauth_discord_client_id: str | None = None
    oauth_discord_client_secret: str | None = None
    oauth_discord_url: str = "https://discord.com"
    oauth_oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect issuer; its discovery document is read."
    )
    oauth_oidc_client_id: str | None = None
    oauth_oidc_client_secret: str | None = None
    oauth_oidc_name: str = Field(default="Single sign-on", description="Label of the OIDC button.")

    # --- identity: API keys, roles, subusers, audit (owned by the access-control work) ---

    # --- nodes: registration, CA, per-node credentials (owned by the registration work) ---
    ca_dir: Path | None = Field(
        default=None,
        description="The node CA and the panel's signing key; empty means `<data_dir>/ca`. "
        "Replicas must share it.",
    )
    node_redis_url: str | None = Field(
        default=None,
        description="Redis URL handed to registering nodes (no credentials; each node gets "
        "its own ACL user); empty means REDIS_URL without its user and password.",
    )
    registration_token_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    local_allocation_ip: str = Field(
        default="0.0.0.0",
        description="`stellarstack up`: the address the local node's first allocations bind "
        "(0.0.0.0: every interface, so players on the network can join).",
    )
    local_allocation_ports: list[str] = Field(
        default_factory=lambda: [
            "25565-25574",
            "19132-19133",
            "27015-27020",
            "30000-30004",
            "2456-2458",
            "7777-7780",
            "8211",
            "34197",
            "64738",
        ],
        description="`stellarstack up`: ports (tcp and udp) the local node gets when first "
        "registered; more can be added on its node page.",
    )
    node_certificate_days: int = Field(default=825, ge=1, le=3650)

    # --- nodes: commands, events, heartbeats, sweeps (owned by the commands work) ---
    heartbeat_interval: float = Field(
        default=30.0, gt=0, description="Seconds between heartbeats daemons are expected to send."
    )
    heartbeat_unhealthy_after: int = Field(
        default=3, ge=1, description="Missed heartbeats before a node is marked unhealthy."
    )
    heartbeat_offline_after: int = Field(
        default=5, ge=1, description="Missed heartbeats before a node is marked offline."
    )
    health_sweep_period: float = Field(
        default=5.0, gt=0, description="Seconds between node health sweeps (one replica runs them)."
    )
    lease_ttl: float = Field(
        default=15.0, gt=0, description="Seconds a replica's lease on once-only work lasts."
    )
    command_ttl: float = Field(
        default=300.0, gt=0, le=86400, description="Seconds a command stays valid by default."
    )
    command_max_payload_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest command payload (JSON bytes) accepted."
    )
    event_reclaim_after: float = Field(
        default=30.0, gt=0, description="Seconds before another replica takes over an event."
    )
    node_discovery_period: float = Field(
        default=5.0, gt=0, description="Seconds between looks for new nodes' event streams."
    )
    daemon_timeout: float = Field(
        default=3.0, gt=0, le=60, description="Seconds a panel → daemon HTTP call may take."
    )
    daemon_breaker_failures: int = Field(
        default=3, ge=1, description="Failed daemon calls in a row that open a node's breaker."
    )
    daemon_breaker_reset: float = Field(
        default=30.0, gt=0, description="Seconds an open breaker waits before one probe call."
    )

    # --- blueprints: catalogue, operator directory, egg import and sync (owned by blueprints) ---
    blueprints_dir: Path | None = Field(
        default=None,
        description="Operator blueprints (YAML or eggs) loaded at start; empty means "
        "`<data_dir>/blueprints` when that folder exists.",
    )
    blueprint_sync_max_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest synced document."
    )
    blueprint_sync_timeout: float = Field(default=30.0, gt=0, le=600)
    blueprint_sync_allow_http: bool = Field(
        default=False, description="Also sync from plain http:// URLs (https only by default)."
    )
    blueprint_sync_allow_private: bool = Field(
        default=False,
        description="Test-only: let syncs reach loopback and private addresses. Never enable "
        "in production (it lets admins make the panel probe its own network).",
    )

    # --- servers: deployment, placement, quotas, lifecycle (owned by the servers work) ---
    server_delete_wait: float = Field(
        default=10.0, gt=0, le=120, description="Seconds DELETE /servers waits for the daemon."
    )
    server_command_ttl: float = Field(
        default=3600.0, gt=0, le=86400, description="Seconds a server.create/delete stays valid."
    )

    # --- events: the SSE stream, status caches (owned by the events work) ---
    events_heartbeat: float = Field(
        default=15.0, gt=0, le=300, description="Seconds of silence before an SSE keep-alive."
    )
    events_access_recheck: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between re-checks of a stream's access."
    )
    events_queue_size: int = Field(
        default=2000, ge=10, description="Events buffered per SSE client before it is cut off."
    )
    events_retry_ms: int = Field(
        default=3000, ge=100, description="Reconnect delay (ms) suggested to SSE clients."
    )
    events_max_streams_per_user: int = Field(
        default=30, ge=1, description="Open SSE streams one user may hold on one replica."
    )

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir / 'stellarstack.db'}"

    @property
    def effective_public_url(self) -> str:
        """The URL the panel is reached at (for links, origins and the install command)."""
        return self.public_url or f"http://{self.host}:{self.port}"


def normalize_database_url(url: str) -> str:
    """Pick the async driver for URLs written the usual way (`postgresql://`, `sqlite://`)."""
    for plain, driver in (
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class DaemonSettings(BaseSettings):
    """Configuration of a node daemon: `STELLAR_DAEMON_*` variables over its TOML file."""

    model_config = SettingsConfigDict(env_prefix="STELLAR_DAEMON_", extra="ignore")

    config_file: Path | None = Field(default=None, exclude=True)
    data_dir: Path = Field(default_factory=lambda: default_data_dir() / "daemon")
    node_id: str | None = None
    panel_url: str | None = None
    api_token: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    heartbeat_interval: float = Field(default=30.0, gt=0)
    runtime: str = Field(default="auto", pattern="^(auto|docker|process)$")
    docker_host: str | None = None
    # Written by `stellarstack daemon register`: TLS for the daemon's HTTP server with the
    # node certificate, the panel CA, and the panel's Ed25519 key for console tokens.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    ca_file: Path | None = None
    panel_public_key_file: Path | None = None
    # console: the WebSocket console's output batching and inbound limits (console work)
    console_history_lines: int = Field(default=150, ge=0, le=10_000)
    console_batch_ms: float = Field(default=25.0, ge=1, le=1000)
    console_max_lines_per_second: int = Field(
        default=50_000, ge=0, description="Output past this rate is throttled; 0: no ceiling."
    )
    console_viewer_buffer_bytes: int = Field(default=1 << 20, ge=4096)
    console_max_message_bytes: int = Field(default=16_384, ge=256, le=1 << 20)
    console_messages_per_second: float = Field(default=20.0, gt=0)
    console_commands_per_second: float = Field(default=10.0, gt=0)
    console_max_sockets_per_server: int = Field(default=30, ge=1)
    console_max_sockets_per_ip: int = Field(default=50, ge=1)
    console_auth_timeout: float = Field(default=10.0, gt=0)
    console_allowed_origins: list[str] = Field(
        default_factory=list, description="Origins allowed besides panel_url's."
    )
    # runtime: pulls, install containers, the process supervisor (runtime work)
    runtime_pull_stall_timeout: float = Field(
        default=120.0, gt=0, le=3600, description="A pull without progress this long fails."
    )
    runtime_install_user: str = Field(
        default="1000:1000",
        pattern=r"^[1-9][0-9]{0,9}(:[1-9][0-9]{0,9})?$",
        description="Numeric uid[:gid] that install containers run as (never root).",
    )
    runtime_process_log_bytes: int = Field(
        default=8 << 20, ge=64 * 1024, description="Output kept on disk per process server."
    )

    # servers: install, lifecycle, crash handling, ready checks, stats (daemon servers work)
    server_stats_interval: float = Field(
        default=1.0, ge=0.1, le=60, description="Seconds between stats samples of a server."
    )
    server_disk_scan_interval: float = Field(
        default=30.0, ge=1, le=3600, description="Seconds a server's disk use stays cached."
    )
    server_command_concurrency: int = Field(
        default=16, ge=1, le=256, description="Commands of different servers run at once."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the TOML file named by STELLAR_DAEMON_CONFIG under init args and env vars."""
        toml_path = os.environ.get("STELLAR_DAEMON_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> DaemonSettings:
        """Load a daemon config file (TOML), letting explicit overrides win."""
        source = TomlConfigSettingsSource(cls, toml_file=path)
        values = {**source(), **overrides}
        return cls(**values)
