"""The panel's FastAPI application: routers, middleware, error mapping, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stellarstack import __version__
from stellarstack.broker import Broker, create_broker
from stellarstack.logs import get_logger
from stellarstack.panel import web
from stellarstack.panel.auth import oauth_routes, totp_routes
from stellarstack.panel.auth.csrf import CsrfMiddleware
from stellarstack.panel.auth.ratelimit import ApiRateLimit
from stellarstack.panel.auth.routes import router as auth_router
from stellarstack.panel.db.session import Database
from stellarstack.panel.domain.admin_users import routes as admin_users_routes
from stellarstack.panel.domain.api_keys import routes as api_keys_routes
from stellarstack.panel.domain.audit import routes as audit_routes
from stellarstack.panel.domain.blueprints import routes as blueprints_routes
from stellarstack.panel.domain.commands import routes as commands_routes
from stellarstack.panel.domain.events import stream_routes
from stellarstack.panel.domain.nodes import registration_routes
from stellarstack.panel.domain.nodes import routes as nodes_routes
from stellarstack.panel.domain.servers import console_routes, power_routes
from stellarstack.panel.domain.servers import routes as servers_routes
from stellarstack.panel.domain.subusers import routes as subusers_routes
from stellarstack.panel.domain.users.routes import router as users_router
from stellarstack.panel.errors import install_error_handlers
from stellarstack.panel.health import check_health, serving
from stellarstack.panel.middleware import (
    BodyLimitMiddleware,
    RequestIdMiddleware,
    RequestMetrics,
    RequestMetricsMiddleware,
)
from stellarstack.settings import PanelSettings

__all__ = ["api_router", "create_app"]

log = get_logger(__name__)

API_DESCRIPTION = """
The StellarStack panel API. Authenticate with the session cookie (browser) or an API key
(`Authorization: Bearer strk_…`). Every error is an RFC 7807 problem inside
`{"success": false, "error": {…}}`.
"""


def api_router() -> APIRouter:
    """All `/api/v1` routes."""
    router = APIRouter(prefix="/api/v1", dependencies=[ApiRateLimit])
    router.include_router(auth_router)
    router.include_router(totp_routes.router)
    router.include_router(oauth_routes.router)
    router.include_router(api_keys_routes.router)  # before /users/me, which it extends
    router.include_router(users_router)
    router.include_router(admin_users_routes.router)
    router.include_router(audit_routes.router)
    router.include_router(subusers_routes.router)
    router.include_router(registration_routes.router)
    router.include_router(nodes_routes.router)
    router.include_router(commands_routes.router)
    router.include_router(blueprints_routes.router)
    router.include_router(servers_routes.router)
    router.include_router(power_routes.router)
    router.include_router(console_routes.router)
    router.include_router(stream_routes.router)
    return router


def create_app(
    settings: PanelSettings | None = None,
    *,
    database: Database | None = None,
    broker: Broker | None = None,
) -> FastAPI:
    """Build the panel app; a database or broker passed in is used and left open."""
    settings = settings or PanelSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_db = database is None
        own_broker = broker is None
        if own_db:
            app.state.database = Database(settings.effective_database_url)
        if own_broker:
            app.state.broker = create_broker(settings.redis_url)
        from stellarstack.panel.domain.events.background import start_background, stop_background

        await start_background(app)
        log.info("panel.started", version=__version__, url=settings.effective_public_url)
        try:
            yield
        finally:
            log.info("panel.stopping")
            await stop_background(app)
            if own_broker:
                await app.state.broker.close()
            if own_db:
                await app.state.database.dispose()

    app = FastAPI(
        title="StellarStack",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.database = database
    app.state.broker = broker
    metrics_registry = CollectorRegistry()
    app.add_middleware(CsrfMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=RequestMetrics(metrics_registry))
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)

    @app.get("/health", tags=["system"])
    async def health(request: Request) -> JSONResponse:
        """Health of the panel, its database and broker, and node counts.

        200 while the database answers (`"status": "degraded"` naming Redis when only Redis is
        down: the panel still serves from the database); 503 when the database does not.
        """
        report = await check_health(
            request.app.state.database,
            request.app.state.broker,
            within=settings.dependency_timeout,
        )
        return JSONResponse(report, status_code=200 if serving(report) else 503)

    @app.get("/metrics", tags=["system"], include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics of this panel process."""
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api_router())
    app.include_router(web.router)
    web.mount_static(app)
    web.install_error_pages(app)
    return app
