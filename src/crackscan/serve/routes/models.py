"""What models the service runs."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends

from crackscan.data.heldout import without_digests
from crackscan.serve.deps import Service, get_service
from crackscan.serve.limits import require_api_key
from crackscan.serve.schemas import ERROR_RESPONSES, ModelInfo, ModelList

router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(require_api_key)])

# Which endpoint falls back to which tasks, in order of preference (mirrors routes.inference).
ENDPOINT_TASKS: dict[str, tuple[str, ...]] = {
    "/v1/classify": ("classify",),
    "/v1/segment": ("segment",),
    "/v1/inspect": ("segment", "classify"),
}


@router.get(
    "/models",
    response_model=ModelList,
    summary="Loaded models: names, tasks, metadata",
    responses={401: ERROR_RESPONSES[401]},
)
async def list_models(service: Service = Depends(get_service)) -> ModelList:
    defaults: dict[str, list[str]] = {}
    for endpoint, tasks in ENDPOINT_TASKS.items():
        for task in tasks:
            first = next((m for m in service.registry.all() if m.task == task), None)
            if first is not None:
                defaults.setdefault(first.name, []).append(endpoint)
                break
    out = []
    for m in service.registry.all():
        meta = m.predictor.metadata
        rest = {k: v for k, v in asdict(meta).items() if k not in ModelInfo.model_fields}
        out.append(
            ModelInfo(
                name=m.name,
                task=meta.task,
                arch=meta.arch,
                class_names=list(meta.class_names),
                crack_class=int(meta.crack_class),
                input_size=int(meta.input_size),
                threshold=float(meta.threshold),
                crackscan_version=meta.crackscan_version,
                default_for=defaults.get(m.name, []),
                metadata=without_digests(rest),
            )
        )
    return ModelList(models=out)
