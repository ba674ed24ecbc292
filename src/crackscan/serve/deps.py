"""Shared state of a running service and the dependencies that hand it to routes."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request, UploadFile

from crackscan.serve.errors import ApiError
from crackscan.serve.inference import InferenceQueue, ModelRegistry
from crackscan.serve.jobs import Upload
from crackscan.serve.limits import check_image, sanitize_filename
from crackscan.serve.metrics import Metrics
from crackscan.serve.settings import ServeSettings

_READ_CHUNK = 1 << 20


@dataclass
class Service:
    """Everything a request needs: settings, models, the inference queue and the metrics."""

    settings: ServeSettings
    metrics: Metrics
    registry: ModelRegistry = field(default_factory=ModelRegistry)
    queue: InferenceQueue | None = None
    ready: bool = False
    not_ready_reason: str | None = "starting"

    def require_queue(self) -> InferenceQueue:
        if self.queue is None or not self.ready:
            raise ApiError(503, "not_ready", f"the server is not ready ({self.not_ready_reason or 'no models'})")
        return self.queue


def get_service(request: Request) -> Service:
    return request.app.state.service


async def read_upload(file: UploadFile, service: Service) -> Upload:
    """The upload's bytes and sanitised name, after the type/header/pixel checks (415/400/413).

    The request body was already size-limited while streaming in
    (:class:`~crackscan.serve.limits.BodySizeLimitMiddleware`); the file is read in
    chunks so the per-file limit holds too when a future server spools differently.
    """
    name = sanitize_filename(file.filename)
    limit = service.settings.max_upload_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await file.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"{name}: file exceeds the upload limit of {limit:,} bytes")
            chunks.append(chunk)
    finally:
        await file.close()
    data = b"".join(chunks)
    check_image(data, name, service.settings.max_pixels)
    return Upload(filename=name, data=data)
