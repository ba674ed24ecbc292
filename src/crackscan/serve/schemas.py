"""Response models: what each endpoint returns, as the OpenAPI page (``/docs``) shows it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable cause, e.g. `bad_image`, `too_large`, `queue_full`.")
    message: str = Field(description="What went wrong and what to do about it.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    models: int = Field(description="Models loaded.")
    reason: str | None = None


class ModelInfo(BaseModel):
    name: str = Field(description="Name to pass as `model`.")
    task: Literal["classify", "segment"]
    arch: str
    class_names: list[str]
    crack_class: int
    input_size: int = Field(description="px: classifier input side / segmentation tile side.")
    threshold: float = Field(description="Crack probability from which a result counts as crack.")
    crackscan_version: str
    default_for: list[str] = Field(description="Endpoints that use this model when no `model` is given.")
    metadata: dict[str, Any] = Field(description="The rest of the model's metadata (training data, metrics …).")


class ModelList(BaseModel):
    models: list[ModelInfo]


class ClassifyResult(BaseModel):
    filename: str = Field(description="The uploaded file's name, sanitised (echo only).")
    label: str = Field(description="Predicted class name.")
    probability: float = Field(ge=0, le=1, description="Probability of `label`.")
    crack_probability: float = Field(ge=0, le=1)
    crack: bool = Field(description="crack_probability >= the model's threshold.")


class ClassifyResponse(BaseModel):
    model: str
    threshold: float
    results: list[ClassifyResult]


class SegmentResponse(BaseModel):
    filename: str
    model: str
    width_px: int
    height_px: int
    threshold: float = Field(description="The threshold this answer used: the request's, else the model's.")
    tta: bool = Field(False, description="Averaged over the image and its flips.")
    crack_pixel_fraction: float = Field(ge=0, le=1, description="Share of pixels at or above the threshold.")
    crack_pixels: int
    max_probability: float = Field(ge=0, le=1)
    mask_png_base64: str = Field(description="The mask, single-channel PNG (0 background, 255 crack), base64.")


class CrackOut(BaseModel):
    """One crack; px always, mm when `mm_per_px` was given."""

    id: int
    length_px: float
    max_width_px: float
    mean_width_px: float
    p95_width_px: float
    orientation_deg: float = Field(description="[0, 180) from the x axis, clockwise on screen.")
    bbox: list[int] = Field(description="x0, y0, x1, y1 in px (x1/y1 exclusive).")
    area_px: int
    branches: int
    length_mm: float | None = None
    max_width_mm: float | None = None
    mean_width_mm: float | None = None
    p95_width_mm: float | None = None
    severity: str


class Totals(BaseModel):
    cracks: int
    total_length_px: float
    max_width_px: float
    mean_width_px: float
    length_mm: float | None = None
    max_width_mm: float | None = None
    mean_width_mm: float | None = None


class Patch(BaseModel):
    row: int
    col: int
    y0: int
    x0: int
    y1: int
    x1: int
    probability: float


class InspectResponse(BaseModel):
    filename: str
    model: str
    task: Literal["classify", "segment"]
    width_px: int
    height_px: int
    mm_per_px: float | None
    threshold: float = Field(description="The threshold this answer used: the request's, else the model's.")
    tta: bool = Field(False, description="Averaged over the image and its flips.")
    crack: bool = Field(description="At least one crack found (segmenter: a measured crack; classifier: a patch).")
    crack_probability: float = Field(ge=0, le=1, description="Largest crack probability anywhere on the photo.")
    severity: str = Field(description="Band of the widest crack; `none` without cracks, `unknown` without a scale.")
    totals: Totals | None = Field(None, description="Segmentation models only.")
    cracks: list[CrackOut] = Field(default_factory=list, description="Segmentation models only.")
    patches: list[Patch] = Field(default_factory=list, description="Classifier patches at or above the threshold.")
    overlay_png_base64: str = Field(description="The photo with the cracks coloured by width (or the patch heatmap).")
    overlay_width_px: int
    overlay_height_px: int
    seconds: float


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Corrupt, truncated or empty image."},
    401: {"model": ErrorResponse, "description": "Missing or wrong X-API-Key (when the server has a key)."},
    413: {"model": ErrorResponse, "description": "Upload or pixel count over the server's limits."},
    415: {"model": ErrorResponse, "description": "Not a JPEG, PNG, TIFF, BMP or WebP (by content)."},
    422: {"model": ErrorResponse, "description": "Bad parameters (e.g. mm_per_px <= 0, unknown model)."},
    429: {"model": ErrorResponse, "description": "Inference queue full; retry later."},
    503: {"model": ErrorResponse, "description": "No model for this task loaded, or shutting down."},
}
