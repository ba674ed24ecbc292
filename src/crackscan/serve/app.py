"""The app factory: ``create_app(settings)`` builds the FastAPI service.

Models load in the lifespan (before the first request is accepted) and are shared by
all requests; at shutdown the service stops admitting work, waits for running
inferences (``settings.shutdown_timeout_s``) and stops the worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crackscan import __version__
from crackscan.serve.deps import Service
from crackscan.serve.errors import install_error_handlers
from crackscan.serve.inference import InferenceQueue, ModelRegistry, default_threads, load_models
from crackscan.serve.limits import BodySizeLimitMiddleware
from crackscan.serve.metrics import Metrics, MetricsMiddleware
from crackscan.serve.routes import health, inference, metrics, models, page
from crackscan.serve.settings import ServeSettings

log = logging.getLogger(__name__)

DESCRIPTION = """Find, outline and measure cracks in photos with crackscan's ONNX models.

Upload images as multipart field `file`. Errors are JSON `{"error": {"code", "message"}}`.
When the server was started with `--api-key-env`, send the key in the `X-API-Key` header.
"""


class _NoSniff:
    """``X-Content-Type-Options: nosniff`` on every response: browsers must not second-guess our types."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, add_header)


def _mount_local_docs(app: FastAPI) -> None:
    """OpenAPI docs at /docs with Swagger UI from the ``swagger-ui-bundle`` package, not a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def create_app(settings: ServeSettings | None = None, *, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the service. ``registry``: already loaded models (tests); else ``settings.models`` load at start-up."""
    settings = settings or ServeSettings()
    service = Service(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threads = settings.threads_per_model or default_threads(settings.workers)
        # Loading parses and optimises graphs: off the loop, although nothing is served yet.
        service.registry = (
            registry
            if registry is not None
            else await anyio.to_thread.run_sync(lambda: load_models(settings.models, threads=threads))
        )
        service.queue = InferenceQueue(settings.workers, settings.queue, on_reject=service.metrics.count_rejection)
        service.ready = len(service.registry) > 0
        service.not_ready_reason = None if service.ready else "no models loaded"
        log.info(
            "crackscan serve ready: %d model(s), %d worker(s), queue %d",
            len(service.registry),
            settings.workers,
            settings.queue,
        )
        try:
            yield
        finally:
            service.ready = False
            service.not_ready_reason = "shutting down"
            queue = service.queue
            if queue is not None:
                drained = await anyio.to_thread.run_sync(queue.close, settings.shutdown_timeout_s)
                if not drained:
                    log.warning("shutdown: inferences still running after %.0f s", settings.shutdown_timeout_s)
            log.info("crackscan serve stopped")

    app = FastAPI(
        title="crackscan",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local files: site networks are often offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    service.metrics.gauge("queue_depth", lambda: service.queue.depth if service.queue else 0)
    service.metrics.gauge("inflight_inferences", lambda: service.queue.running if service.queue else 0)
    service.metrics.gauge("models_loaded", lambda: len(service.registry))

    install_error_handlers(app)
    for router in (health.router, models.router, inference.router, metrics.router, page.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    _mount_local_docs(app)
    # Last added runs first: metrics see every response, including the body limit's 413.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(_NoSniff)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, mounts=("/static", "/docs-static"))
    return app
