"""The panel's background work: event ingestion on every replica, sweeps on one.

- `EventIngest` runs on every replica; the consumer group hands each event to one of them.
- `DaemonClient` (per-node circuit breakers, TLS verified with the panel CA and the node id)
  is the one panel → daemon client, shared by the routes of this process.
- The health sweep and command tracking run under the `node-health` lease, so exactly one
  replica does them at a time (Redis lease; in process on the embedded default).

`start_background(app)` / `stop_background(app)` are called from the app's lifespan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI

from stellarstack.broker import Broker
from stellarstack.panel.daemon_client import DaemonClient, TlsFactory
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.commands.tracking import track_commands
from stellarstack.panel.domain.events.consumer import EventIngest
from stellarstack.panel.domain.nodes.daemon_client import node_tls_factory
from stellarstack.panel.domain.nodes.health import HealthThresholds, sweep_node_health
from stellarstack.panel.domain.nodes.pki import NodePki
from stellarstack.panel.leases import LeasedLoop, LeaseStore, lease_store
from stellarstack.settings import PanelSettings

__all__ = ["SWEEP_LEASE", "Background", "start_background", "stop_background"]

SWEEP_LEASE = "node-health"
"""Name of the lease under which one replica sweeps node health and tracks commands."""


@dataclass
class Background:
    """The running background work of one panel process."""

    ingest: EventIngest
    sweeper: LeasedLoop
    leases: LeaseStore
    sweeper_task: asyncio.Task[None]
    daemon_client: DaemonClient

    @classmethod
    def start(
        cls,
        settings: PanelSettings,
        database: Database,
        broker: Broker,
        *,
        tls: TlsFactory | None = None,
    ) -> Background:
        """Start ingestion and the leased sweep loop; `tls` verifies the daemons called."""
        thresholds = HealthThresholds.from_settings(settings)
        ingest = EventIngest(
            database,
            broker,
            reclaim_after=settings.event_reclaim_after,
            discovery_period=settings.node_discovery_period,
            fresh_within=thresholds.unhealthy_after,
        )
        ingest.start()

        async def sweep() -> None:
            async with database.sessionmaker() as db:
                await sweep_node_health(db, broker, thresholds)
            async with database.sessionmaker() as db:
                await track_commands(db, broker)

        leases = lease_store(settings.redis_url)
        sweeper = LeasedLoop(
            leases.lease(SWEEP_LEASE, ttl=settings.lease_ttl),
            sweep,
            period=settings.health_sweep_period,
        )
        task = asyncio.create_task(sweeper.run(), name="panel:sweeper")
        client = DaemonClient(
            timeout=settings.daemon_timeout,
            failures_to_open=settings.daemon_breaker_failures,
            reset_after=settings.daemon_breaker_reset,
            tls=tls,
        )
        return cls(ingest, sweeper, leases, task, client)

    async def stop(self) -> None:
        """Stop the sweep (releasing its lease) and ingestion."""
        await self.sweeper.stop()
        await asyncio.gather(self.sweeper_task, return_exceptions=True)
        await self.ingest.stop()
        await self.leases.close()
        await self.daemon_client.aclose()


async def start_background(app: FastAPI) -> None:
    """Start the background work; the daemon client trusts the panel CA (loaded here)."""
    pki: NodePki | None = getattr(app.state, "node_pki", None)
    if pki is None:
        pki = NodePki.load(app.state.settings)
        app.state.node_pki = pki
    tls = node_tls_factory(pki.ca.certificate_pem)
    background = Background.start(app.state.settings, app.state.database, app.state.broker, tls=tls)
    app.state.background = background
    app.state.daemon_client = background.daemon_client


async def stop_background(app: FastAPI) -> None:
    """Stop what start_background started (safe to call when it never started)."""
    background: Background | None = getattr(app.state, "background", None)
    if background is not None:
        app.state.background = None
        await background.stop()
