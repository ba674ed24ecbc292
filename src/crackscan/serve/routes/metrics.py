"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from crackscan.serve.deps import Service, get_service
from crackscan.serve.limits import require_api_key
from crackscan.serve.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"], dependencies=[Depends(require_api_key)])


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (text exposition format)",
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(service: Service = Depends(get_service)) -> PlainTextResponse:
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)
