"""``crackscan inspect --engine ray``: the local inspection engine spread over a Ray cluster.

The pipeline is a Ray Data stream of photo *paths*, not pixels::

    driver: collect files (folders, globs, @lists) ─▶ names ─▶ ray.data.from_items(rows)
    actor pool (one ONNX Runtime session per actor, ``--num-workers`` actors):
        read + decode ─▶ tile ─▶ model ─▶ blend ─▶ threshold ─▶ measure ─▶ mask/overlay/JSON files
    driver: rows back in any order ─▶ results in input order ─▶ summary.csv + report.html

Read, decode, tile, infer and measure run inside one actor call on purpose: a 12-MP
photo is 36 MB of RGB and 48 MB of probabilities, and handing those between Ray stages
would copy them through the object store. An actor reads the file itself from its path
(so inputs and the output folder must be on storage every node sees) and returns only
the result's JSON, the file names it wrote and the small report previews (JPEG, tens
of kB).

Every stage is the local engine's own code — :func:`~crackscan.analysis.inspect.inspect_image`,
:func:`~crackscan.analysis.report.write_image_outputs`,
:func:`~crackscan.analysis.report.write_report` and the same output-folder rules — so a
Ray run writes the same files and the same ``summary.csv`` rows as ``--engine local``.

``resume=True`` keeps an earlier run's files: a photo whose ``results/<name>.json`` is
there, names the same photo and was made with the same model file and settings is not
inspected again; its stored result (and previews rebuilt from its overlay) go into the
new summary and report. Photos that failed before are tried again.

Ray is imported only when a run starts; without it :class:`RayUnavailableError` says
how to install it. This module imports no torch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crackscan.analysis.inspect import (
    STATUS_FAILED,
    STATUS_OK,
    InspectionResult,
    InspectionSettings,
    inspect_image,
    model_info,
    open_inspection_model,
)
from crackscan.analysis.measure import ImageMeasurement
from crackscan.analysis.output_folder import (
    MARKER,
    InspectionError,
    OutputFolderError,
    exclude_own_outputs,
    marker_files,
    prepare_output_dir,
    unique_names,
    write_marker,
)
from crackscan.imageio import ImageReadError
from crackscan.runtime.predictor import OnnxPredictor, load_predictor
from crackscan.runtime.tiling import ProgressCallback

log = logging.getLogger(__name__)

RAY_INSTALL_HINT = 'pip install "crackscan[ray]"'
THREADS_PER_WORKER = 1  # ORT intra-op threads per actor: one-thread actors scale best (measure/PNG are serial)
MAX_BLOCKS = 4096  # rows per block = 1 up to here: one slow photo must not hold others back in its block


class RayUnavailableError(InspectionError):
    """Ray Data is not installed, or no Ray cluster could be reached."""


@dataclass
class RayInspection:
    """What a Ray run did: results in input order (failed paths first, as the local engine
    lists them), how many photos were reused from an earlier run, and the actor count."""

    results: list[InspectionResult]
    resumed: int = 0
    workers: int = 0
    written: list[str] = field(default_factory=list)


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or :class:`RayUnavailableError` with the install command."""
    try:
        import ray
        import ray.data  # ray without the [data] extra lacks pyarrow/pandas
    except ImportError as exc:
        raise RayUnavailableError(
            f"--engine ray needs Ray Data ({getattr(exc, 'name', None) or exc} is missing): {RAY_INSTALL_HINT}"
        ) from None
    return ray


# --------------------------------------------------------------------------- results as plain data


def result_from_dict(doc: dict[str, Any], previews: dict[str, bytes] | None = None) -> InspectionResult:
    """Rebuild an :class:`InspectionResult` (without arrays) from its :meth:`~InspectionResult.to_dict` JSON."""
    measurement = doc.get("measurement")
    return InspectionResult(
        source=str(doc["image"]),
        name=str(doc.get("name") or ""),
        status=str(doc.get("status", STATUS_FAILED)),
        error=doc.get("error"),
        task=doc.get("task"),
        height=int(doc.get("height_px") or 0),
        width=int(doc.get("width_px") or 0),
        threshold=doc.get("threshold"),
        crack_probability=doc.get("crack_probability"),
        measurement=ImageMeasurement.from_dict(measurement) if measurement else None,
        patches=list(doc.get("patches") or []),
        n_patches=int(doc.get("n_patches") or 0),
        seconds=float(doc.get("seconds") or 0.0),
        outputs=dict(doc.get("outputs") or {}),
        previews=dict(previews or {}),
    )


def _comparable(value: Any) -> Any:
    # Settings as they read back from JSON (tuples become lists), for comparing with a stored run.
    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------- the actor

_OUTPUT_COLUMNS = ("index", "doc", "written", "resumed", "thumbnail", "overlay")


def _columns(batch: Any) -> tuple[list[int], list[str], list[str]]:
    return [int(i) for i in batch["index"]], [str(p) for p in batch["path"]], [str(n) for n in batch["name"]]


class InspectionWorker:
    """One Ray actor: holds an ONNX Runtime session and inspects the photos it is sent.

    ``__call__`` takes a pandas batch (columns ``index``, ``path``, ``name``; one row as
    the engine sends it) and returns a pandas batch with columns ``index``, ``doc``, ``written``, ``resumed``,
    ``thumbnail``, ``overlay`` — see :meth:`inspect_row`.
    """

    def __init__(
        self,
        model_path: str,
        settings: InspectionSettings,
        out_dir: str,
        model: dict[str, Any],
        resume: bool,
        threads: int = THREADS_PER_WORKER,
    ) -> None:
        predictor = load_predictor(model_path, threads=threads)
        # Same checks as the driver's (task, preprocessing) — on the worker's own installation.
        self.predictor = open_inspection_model(predictor) if isinstance(predictor, OnnxPredictor) else predictor
        self.settings = settings.validate()
        self.out = Path(out_dir)
        self.model = model
        self.resume = resume
        self._settings_json = _comparable(settings.to_dict())

    def __call__(self, batch: Any) -> Any:
        import pandas as pd  # Ray Data's own dependency; a pandas batch keeps bytes as bytes

        rows = [self.inspect_row({"index": i, "path": p, "name": n}) for i, p, n in zip(*_columns(batch), strict=True)]
        return pd.DataFrame({key: [row[key] for row in rows] for key in _OUTPUT_COLUMNS})

    def inspect_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """One photo ``{"index", "path", "name"}`` → ``{"index", "doc", "written", "resumed", "thumbnail", "overlay"}``.

        ``doc``: the result's JSON (string); ``written``: files written, a JSON list
        relative to the output folder; ``resumed``: a stored result was reused;
        ``thumbnail``/``overlay``: the report previews (JPEG bytes, empty when none).
        """
        path, name = str(row["path"]), str(row["name"])
        result, written, resumed = None, [], False
        if self.resume:
            result = self._restore(path, name)
            if result is not None:
                written, resumed = sorted(set(result.outputs.values())), True
        if result is None:
            result, written = self._inspect(path, name)
        return {
            "index": int(row["index"]),
            "doc": json.dumps(result.to_dict()),
            "written": json.dumps(written),
            "resumed": resumed,
            "thumbnail": result.previews.get("thumbnail", b""),
            "overlay": result.previews.get("overlay", b""),
        }

    def _inspect(self, path: str, name: str) -> tuple[InspectionResult, list[str]]:
        """The local engine's per-photo step, failures included (same messages as inspect_paths)."""
        from crackscan.analysis.report import write_image_outputs

        try:
            result = inspect_image(self.predictor, path, settings=self.settings, name=name)
            result.source = path
            written = write_image_outputs(result, self.out, model=self.model, settings=self.settings)
            result.release()
            return result, written
        except ImageReadError as exc:
            error = exc.reason
        except MemoryError:
            error = "not enough memory for this image"
        except Exception as exc:  # one odd file must not end a run over 100,000 photos
            log.exception("inspection of %s failed", path)
            error = f"{type(exc).__name__}: {exc}"
        return InspectionResult(source=path, name=name, status=STATUS_FAILED, error=error), []

    def _restore(self, path: str, name: str) -> InspectionResult | None:
        """An earlier run's result for this photo, or ``None`` when it must be inspected (again)."""
        from crackscan.analysis.report import PREVIEW_SIDE, THUMBNAIL_SIDE, _encode, _fit
        from crackscan.imageio import read_image

        stored = self.out / "results" / f"{name}.json"
        try:
            doc = json.loads(stored.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("image") != path or doc.get("status") != STATUS_OK:
            return None
        model = doc.get("model") or {}
        if model.get("path") != self.model.get("path") or doc.get("settings") != self._settings_json:
            log.info("%s: stored result made with another model or settings; inspecting again", path)
            return None
        outputs = doc.get("outputs") or {}
        if not all(isinstance(rel, str) and (self.out / rel).is_file() for rel in outputs.values()):
            return None
        try:
            photo = read_image(path, max_pixels=self.settings.max_pixels)
            previews = {"thumbnail": _encode(_fit(photo, THUMBNAIL_SIDE))}
            del photo
            if "overlay" in outputs:
                overlay = read_image(self.out / outputs["overlay"], max_pixels=None)
                previews["overlay"] = _encode(_fit(overlay, PREVIEW_SIDE))
            return result_from_dict(doc, previews)
        except Exception as exc:  # an unreadable photo or overlay: inspect again (that records the failure)
            log.info("%s: cannot reuse the stored result (%s); inspecting again", path, exc)
            return None


# --------------------------------------------------------------------------- the driver


def _connect(ray: Any, address: str | None) -> bool:
    """Attach to a running Ray (``address``) or start a local one; True when this call started it."""
    if ray.is_initialized():
        return False  # the caller (a notebook, a test) owns the Ray instance
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise RayUnavailableError(
            f"cannot connect to {where}: {exc}. Start a cluster with `ray start --head` (then --address auto), "
            "or leave out --address to run on this machine"
        ) from None
    return True


def _default_workers(ray: Any, threads: int) -> int:
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1, int(cpus // threads))


def _prepare_resumed_output(out: Path, *, overwrite: bool) -> list[str]:
    """Keep an earlier report's files (they are the work to resume); return the files it wrote."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{out}: exists and is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not overwrite:
        raise OutputFolderError(
            f"{out}: --resume needs a folder an earlier `crackscan inspect` wrote; this one holds other files "
            "(pass --overwrite to write into it anyway)"
        )
    out.mkdir(parents=True, exist_ok=True)
    return marker_files(out)


def inspect_paths_ray(
    paths: Iterable[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str],
    model: str | os.PathLike[str] | OnnxPredictor | None = None,
    settings: InspectionSettings | None = None,
    overwrite: bool = False,
    resume: bool = False,
    address: str | None = None,
    num_workers: int | None = None,
    threads_per_worker: int = THREADS_PER_WORKER,
    progress: ProgressCallback | None = None,
) -> RayInspection:
    """Inspect files, folders and globs on Ray; the same files as :func:`crackscan.analysis.inspect.inspect_paths`.

    ``out_dir`` is required (workers write their files there: on a cluster it must be
    shared storage, as must the photos and the model file). ``address``: ``None`` uses
    the Ray instance this process already joined, or starts a local one (shut down
    afterwards); ``"auto"`` or ``"ray://host:10001"`` joins a cluster. ``num_workers``:
    actors, each holding one ONNX Runtime session with ``threads_per_worker`` threads
    and reserving that many CPUs (default: the cluster's CPUs / ``threads_per_worker``).
    ``progress(done, total)`` counts photos as their results arrive.

    Raises :class:`RayUnavailableError` without Ray or a reachable cluster, and
    :class:`~crackscan.analysis.inspect.InspectionError` for bad settings, models or
    output folders — before any photo is inspected.
    """
    from crackscan.analysis.report import write_report
    from crackscan.evaluation.files import collect_images

    if num_workers is not None and num_workers < 1:
        raise InspectionError(f"--num-workers must be at least 1, got {num_workers}")
    if threads_per_worker < 1:
        raise InspectionError(f"threads per worker must be at least 1, got {threads_per_worker}")
    ray = import_ray()
    settings = (settings or InspectionSettings()).validate()
    predictor = open_inspection_model(model)  # bad models fail here, once, not in every actor
    info = model_info(predictor)
    files, problems = collect_images(paths)
    out = Path(out_dir)
    files = exclude_own_outputs(files, out)
    if resume:
        previous = _prepare_resumed_output(out, overwrite=overwrite)
    else:
        out, previous = prepare_output_dir(out, overwrite=overwrite), []
    write_marker(out, previous)  # at once: an interrupted run's folder is still recognised as ours

    names = unique_names(files)
    rows = [{"index": i, "path": str(p), "name": n} for i, (p, n) in enumerate(zip(files, names, strict=True))]
    done: dict[int, InspectionResult] = {}
    written = list(previous)
    resumed = workers = 0
    if progress is not None:
        progress(0, len(rows))
    if rows:
        started = _connect(ray, address)
        context = ray.data.DataContext.get_current()
        saved = (context.enable_progress_bars, context.print_on_execution_start)
        # The caller shows progress (the CLI's own bar); Ray's bars would interleave with it.
        context.enable_progress_bars, context.print_on_execution_start = False, False
        try:
            workers = min(num_workers or _default_workers(ray, threads_per_worker), len(rows))
            dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
            # batch_size=1: each photo is a task of its own. Without it Ray Data bundles the
            # tiny path rows into one task, and one actor would get every photo.
            dataset = dataset.map_batches(
                InspectionWorker,
                batch_size=1,
                batch_format="pandas",
                fn_constructor_kwargs={
                    "model_path": str(predictor.path),
                    "settings": settings,
                    "out_dir": str(out.resolve()),
                    "model": info,
                    "resume": resume,
                    "threads": threads_per_worker,
                },
                compute=ray.data.ActorPoolStrategy(size=workers),  # a fixed pool: sessions load once per actor
                num_cpus=threads_per_worker,
            )
            for row in dataset.iter_rows():
                previews = {k: bytes(row[k]) for k in ("thumbnail", "overlay") if row.get(k)}
                done[int(row["index"])] = result_from_dict(json.loads(row["doc"]), previews)
                written += json.loads(row["written"])
                resumed += bool(row["resumed"])
                if progress is not None:
                    progress(len(done), len(rows))
        finally:
            context.enable_progress_bars, context.print_on_execution_start = saved
            if started:
                ray.shutdown()

    results = [InspectionResult(source=p.path, name="", status=STATUS_FAILED, error=p.reason) for p in problems]
    results += [done[i] for i in range(len(rows))]
    written += write_report(results, out, model=info, settings=settings)
    write_marker(out, written)
    return RayInspection(results=results, resumed=resumed, workers=workers, written=sorted(set(written)))
