"""Liveness and readiness probes (no API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from crackscan.serve.deps import Service, get_service
from crackscan.serve.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Models are loaded and requests are accepted",
    responses={503: {"model": Readiness, "description": "Starting, shutting down, or no model loaded."}},
)
async def readyz(service: Service = Depends(get_service)) -> JSONResponse:
    ready = service.ready and len(service.registry) > 0
    reason = None if ready else (service.not_ready_reason or "no models loaded")
    body = Readiness(ready=ready, models=len(service.registry), reason=reason)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
