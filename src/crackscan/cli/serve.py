"""``crackscan serve``: the HTTP API and web page (thin: parse, check, hand over to uvicorn)."""

from __future__ import annotations

import logging
import os

import typer
from rich.markup import escape

from crackscan.cli._common import err, fail
from crackscan.serve.settings import (
    DEFAULT_HOST,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_MODELS,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    DEFAULT_WORKERS,
)

SHUTDOWN_GRACE_S = 30  # how long uvicorn lets running requests finish after SIGTERM / Ctrl-C


def _fail(message: str, code: int = 2) -> typer.Exit:
    return fail(message, code)


def _model_sources(models: list[str] | None) -> list[str]:
    """The --model values checked to exist, or the bundled defaults that are installed."""
    from crackscan.runtime.ensemble import SEPARATOR, is_ensemble_spec, split_spec
    from crackscan.runtime.predictor import ModelLoadError, resolve_model_path

    def resolve(m: str) -> str:
        path = os.path.join(m, "model.onnx") if os.path.isdir(m) else m
        return str(resolve_model_path(path))

    if models:
        sources = []
        for m in models:
            try:
                if is_ensemble_spec(m):  # each member checked; served as one model
                    sources.append(SEPARATOR.join(resolve(part) for part in split_spec(m)))
                else:
                    sources.append(resolve(m))
            except ModelLoadError as exc:
                raise _fail(str(exc)) from None
        return sources
    found = []
    for name in DEFAULT_MODELS:
        try:
            found.append(str(resolve_model_path(name)))
        except ModelLoadError:
            continue
    if not found:
        raise _fail(
            f"no model to serve: none of the bundled models ({', '.join(DEFAULT_MODELS)}) is installed and no "
            "--model was given; pass --model FILE.onnx (a crackscan classification or segmentation model)"
        )
    return found


def serve(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to bind; the default answers this machine only."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port."),
    model: list[str] | None = typer.Option(
        None,
        "--model",
        help="Model file (.onnx), run folder or bundled name; repeat for several "
        f"(default: the bundled {', '.join(DEFAULT_MODELS)} that are installed).",
    ),
    max_upload_mb: float = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", help="Largest request body, MB."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Largest image, pixels (from its header)."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Name of an environment variable holding the API key clients send as X-API-Key."
    ),
    workers: int = typer.Option(DEFAULT_WORKERS, "--workers", help="Inference threads (requests computed at once)."),
    queue: int = typer.Option(DEFAULT_QUEUE, "--queue", help="Requests that may wait for a worker; more get 429."),
    log_level: str = typer.Option(
        "info", "--log-level", help="uvicorn log level: critical, error, warning, info, debug."
    ),
) -> None:
    """Serve the HTTP API (/v1/classify, /v1/segment, /v1/inspect, /metrics, /docs) and the web page at /.

    Exit status 2: no model, a bad option, or an --api-key-env variable that is not set.
    """
    import uvicorn
    from pydantic import ValidationError

    from crackscan.serve import ServeSettings, create_app

    api_key = None
    if api_key_env:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            # Fail closed: starting without the key the operator asked for would serve everyone.
            raise _fail(f"--api-key-env {api_key_env}: that environment variable is not set or empty")
    if max_upload_mb <= 0:
        raise _fail(f"--max-upload-mb must be > 0, got {max_upload_mb:g}")
    sources = _model_sources(model)
    try:
        settings = ServeSettings(
            host=host,
            port=port,
            models=sources,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            max_pixels=max_pixels,
            api_key=api_key,
            workers=workers,
            queue=queue,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise _fail(f"bad option: {problems}") from None
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), format="%(levelname)s: %(message)s")
    from crackscan.runtime.predictor import ModelLoadError
    from crackscan.serve.inference import default_threads, load_models

    try:
        # Opened here, before uvicorn starts, so a bad model file is one clear line and exit 2,
        # not a lifespan traceback; the app gets the loaded sessions and does not load them again.
        registry = load_models(sources, threads=default_threads(workers))
    except ModelLoadError as exc:
        raise _fail(str(exc)) from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning:[/] binding {escape(host)}: reachable from other machines"
            + ("" if api_key else "; consider --api-key-env")
        )
    shown = f"[{host}]" if ":" in host else host
    err.print(f"crackscan serve: http://{shown}:{port}/  (API docs at /docs; {len(sources)} model(s))")
    try:
        uvicorn.run(
            create_app(settings, registry=registry),
            host=host,
            port=port,
            log_level=log_level.lower(),
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            server_header=False,
        )
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise _fail(
                "the server could not start (see the log above: a model that failed to load, or the port in use)"
            ) from None
        raise
