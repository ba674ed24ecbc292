"""Settings of the HTTP service, validated once at start-up."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# The bundled models the service loads when no --model is given (those that are installed).
DEFAULT_MODELS = ("crack-cls", "crack-seg", "scratch-seg")
DEFAULT_HOST = "127.0.0.1"  # loopback unless the operator says otherwise: no accidental exposure
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 25.0  # a 12 MP PNG is ~20 MB; phone JPEGs are 3–8 MB
DEFAULT_MAX_PIXELS = 50_000_000  # px: 8K×6K photos pass; decoding beyond that costs GBs per request
DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 16
DEFAULT_MAX_FILES = 32  # files in one /v1/classify request


class ServeSettings(BaseModel):
    """What ``crackscan serve`` was started with.

    ``models``: model files or bundled names, loaded at start-up; ``max_upload_bytes``:
    the largest request body (the whole multipart body, counted while it streams in);
    ``max_pixels``: images whose header announces more pixels are refused before
    decoding; ``api_key``: when set, ``/v1/*`` and ``/metrics`` need it in ``X-API-Key``;
    ``workers``: inference threads (requests computed at once); ``queue``: requests
    allowed to wait for a worker before new ones get 429; ``threads_per_model``: ONNX
    Runtime intra-op threads per session (``None``: CPU cores / workers).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    models: list[str] = Field(default_factory=list)
    max_upload_bytes: int = Field(int(DEFAULT_MAX_UPLOAD_MB * 1024 * 1024), ge=1)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_files: int = Field(DEFAULT_MAX_FILES, ge=1)
    api_key: SecretStr | None = None
    workers: int = Field(DEFAULT_WORKERS, ge=1, le=64)
    queue: int = Field(DEFAULT_QUEUE, ge=0)
    threads_per_model: int | None = Field(None, ge=1)
    overlay_max_side: int = Field(1600, ge=64)  # px: overlays sent to the browser
    shutdown_timeout_s: float = Field(30.0, ge=0)  # how long shutdown waits for running inferences

    @property
    def auth_enabled(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())
