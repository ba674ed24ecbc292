"""Inference endpoints: classify, segment, inspect.

Each request is checked on the event loop (size, type by content, header pixel count)
and then queued for a worker thread; nothing the client sends reaches a file path —
the file name is only echoed back, sanitised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from crackscan.serve import jobs
from crackscan.serve.deps import Service, get_service, read_upload
from crackscan.serve.errors import ApiError
from crackscan.serve.inference import LoadedModel
from crackscan.serve.limits import require_api_key
from crackscan.serve.routes.models import ENDPOINT_TASKS
from crackscan.serve.schemas import ERROR_RESPONSES, ClassifyResponse, InspectResponse, SegmentResponse

router = APIRouter(prefix="/v1", tags=["inference"], dependencies=[Depends(require_api_key)])
T = TypeVar("T")

_MODEL_HELP = "Name of a loaded model (see /v1/models); default: the first loaded model of the task."
_FILE_HELP = "An image: JPEG, PNG, TIFF, BMP or WebP (recognised by content, not by name)."


def _pick(query: str | None, form: str | None) -> str | None:
    """A parameter given as query or form field (the form wins when both are given)."""
    return form if form not in (None, "") else (query or None)


def _scale(query: float | None, form: float | None) -> float | None:
    value = form if form is not None else query
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ApiError(422, "invalid_parameter", f"mm_per_px must be a positive number of mm per pixel, got {value}")
    return value


def _threshold(query: float | None, form: float | None) -> float | None:
    value = form if form is not None else query
    if value is not None and not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ApiError(422, "invalid_parameter", f"threshold must be a crack probability in (0, 1), got {value}")
    return value


_THRESHOLD_HELP = (
    "Crack probability from which a pixel counts as crack, in (0, 1); default: the model's calibrated threshold "
    "(its TTA threshold with `tta`)."
)
_CLASSIFY_THRESHOLD_HELP = "Crack probability from which an image counts as crack, in (0, 1); default: the model's."
_TTA_HELP = "Average the model over the image and its two flips: about 3× the time, a little more accurate."


async def _run(service: Service, endpoint: str, model: LoadedModel, fn: Callable[..., T], *args: Any) -> T:
    queue = service.require_queue()

    def timed() -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            service.metrics.observe_inference(endpoint, model.name, time.perf_counter() - start)

    return await queue.run(timed)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Crack / no crack for one or more images",
    responses=ERROR_RESPONSES,
)
async def classify(
    file: list[UploadFile] = File(..., description=_FILE_HELP + " Repeat the field for several images."),
    model: str | None = Query(None, description=_MODEL_HELP),
    model_form: str | None = Form(None, alias="model", description=_MODEL_HELP),
    threshold: float | None = Query(None, description=_CLASSIFY_THRESHOLD_HELP),
    threshold_form: float | None = Form(None, alias="threshold", description=_CLASSIFY_THRESHOLD_HELP),
    service: Service = Depends(get_service),
) -> ClassifyResponse:
    cut = _threshold(threshold, threshold_form)
    if len(file) > service.settings.max_files:
        raise ApiError(
            422, "too_many_files", f"{len(file)} files in one request; the limit is {service.settings.max_files}"
        )
    chosen = service.registry.for_task(ENDPOINT_TASKS["/v1/classify"], _pick(model, model_form), "/v1/classify")
    uploads = [await read_upload(f, service) for f in file]
    results = await _run(
        service, "classify", chosen, jobs.classify, chosen.predictor, uploads, service.settings.max_pixels, cut
    )
    used = cut if cut is not None else float(chosen.predictor.metadata.threshold)
    return ClassifyResponse(model=chosen.name, threshold=used, results=results)


@router.post(
    "/segment",
    response_model=SegmentResponse,
    summary="Crack-pixel fraction and mask of one image",
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "JSON with the mask as base64 PNG, or with `format=png` the mask PNG itself.",
            "content": {"image/png": {}},
        },
    },
)
async def segment(
    file: UploadFile = File(..., description=_FILE_HELP),
    format: Literal["json", "png"] = Query("json", description="`png`: answer with the mask PNG itself."),
    model: str | None = Query(None, description=_MODEL_HELP),
    model_form: str | None = Form(None, alias="model", description=_MODEL_HELP),
    threshold: float | None = Query(None, description=_THRESHOLD_HELP),
    threshold_form: float | None = Form(None, alias="threshold", description=_THRESHOLD_HELP),
    tta: bool = Query(False, description=_TTA_HELP),
    tta_form: bool | None = Form(None, alias="tta", description=_TTA_HELP),
    service: Service = Depends(get_service),
) -> Any:
    cut = _threshold(threshold, threshold_form)
    flips = tta_form if tta_form is not None else tta
    chosen = service.registry.for_task(ENDPOINT_TASKS["/v1/segment"], _pick(model, model_form), "/v1/segment")
    upload = await read_upload(file, service)

    def work() -> dict[str, Any]:
        return jobs.segment(chosen.predictor, upload, service.settings.max_pixels, threshold=cut, tta=flips)

    out = await _run(service, "segment", chosen, work)
    mask_png: bytes = out.pop("mask_png")
    if format == "png":
        return Response(
            content=mask_png,
            media_type="image/png",
            headers={
                "X-Crack-Pixel-Fraction": str(out["crack_pixel_fraction"]),
                "X-Crackscan-Model": chosen.name,
                "X-Crackscan-Threshold": str(out["threshold"]),
                "Content-Disposition": 'inline; filename="mask.png"',  # never the client's name in a header
            },
        )
    return SegmentResponse(model=chosen.name, mask_png_base64=jobs.b64(mask_png), **out)


@router.post(
    "/inspect",
    response_model=InspectResponse,
    summary="Per-crack measurements, totals, severity and an overlay of one photo",
    responses=ERROR_RESPONSES,
)
async def inspect(
    file: UploadFile = File(..., description=_FILE_HELP),
    mm_per_px: float | None = Query(None, description="Scale in mm per pixel (> 0) for mm widths and severity."),
    mm_per_px_form: float | None = Form(None, alias="mm_per_px", description="Same as the query parameter."),
    model: str | None = Query(None, description=_MODEL_HELP),
    model_form: str | None = Form(None, alias="model", description=_MODEL_HELP),
    threshold: float | None = Query(None, description=_THRESHOLD_HELP),
    threshold_form: float | None = Form(None, alias="threshold", description=_THRESHOLD_HELP),
    tta: bool = Query(False, description=_TTA_HELP),
    tta_form: bool | None = Form(None, alias="tta", description=_TTA_HELP),
    service: Service = Depends(get_service),
) -> InspectResponse:
    scale = _scale(mm_per_px, mm_per_px_form)
    cut = _threshold(threshold, threshold_form)
    flips = tta_form if tta_form is not None else tta
    chosen = service.registry.for_task(ENDPOINT_TASKS["/v1/inspect"], _pick(model, model_form), "/v1/inspect")
    upload = await read_upload(file, service)

    def work() -> dict[str, Any]:
        return jobs.inspect(
            chosen.predictor,
            upload,
            max_pixels=service.settings.max_pixels,
            mm_per_px=scale,
            overlay_max_side=service.settings.overlay_max_side,
            threshold=cut,
            tta=flips,
        )

    out = await _run(service, "inspect", chosen, work)
    return InspectResponse(model=chosen.name, **out)
