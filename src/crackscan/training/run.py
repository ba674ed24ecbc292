"""What every training run shares: rank handling, loggers, progress output and curves.

Classification and segmentation differ in data, model and metrics; the run folder,
its loggers, the epoch log lines and the curves PNG are the same for both.
"""

from __future__ import annotations

import csv
import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from crackscan.data.check import ImageFacts, inspect_image, map_files
from crackscan.data.heldout import find_held_out, recorded_held_out
from crackscan.data.similar import similar_pairs

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The data set cannot train the model; the message says what to fix."""


def refuse_held_out(train: list[Path], training_data: dict[str, Any], model_file: Path, *, what: str = "") -> bool:
    """Raise :class:`TrainingDataError` when a training image of a fine-tune is one ``model_file`` was tested on
    (its recorded content digests, :mod:`crackscan.data.heldout`). False when the model records no digests
    (exported before they were kept): the caller then falls back to comparing how the sets were split."""
    digests = recorded_held_out(training_data)
    if digests is None:
        return False
    leaked = find_held_out(train, digests)
    if leaked:
        shown = ", ".join(p.name for p in leaked[:3]) + (" …" if len(leaked) > 3 else "")
        raise TrainingDataError(
            f"{what}{len(leaked)} training image(s) of this split ({shown}) are in the test split of --weights "
            f"{model_file} (same bytes): its test figures would no longer be held out. Pass --split with the "
            "model's own split, or leave those images out"
        )
    return True


def set_names(roots: list[str] | list[Path]) -> list[str]:
    """One name per data set given to a run — its folder's name, ``_`` appended to repeats — for its
    ``splits/<name>.json`` file and its entry in the model's record."""
    names: list[str] = []
    for root in roots:
        name = Path(root).resolve().name or "data"
        while name in names:
            name += "_"
        names.append(name)
    return names


def split_folder(split: str | None, n_sets: int) -> Path | None:
    """``--split`` as a folder of ``<set>.json`` files (a run's ``splits/``), or None when it names one file
    (only for a single set) or nothing."""
    folder = Path(split) if split and Path(split).is_dir() else None
    if split and folder is None and n_sets > 1:
        raise TrainingDataError(
            "--split FILE applies to a single data set; with several, give a folder of <set>.json files "
            "(a run's splits/) or none, and each set gets its own split"
        )
    return folder


def split_file_in(folder: Path, name: str, root: str | Path) -> Path:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise TrainingDataError(f"--split {folder}: no {name}.json for data set {root}")
    return path


def refuse_copies_across_sets(
    train: list[Path], test: list[Path], test_digests: set[str], facts: dict[Path, ImageFacts] | None = None
) -> None:
    """Several sets train one model, each split on its own: an image that is in one set's test part and, as a
    copy, in another's training part would make the test figures a score on training data. Raise
    :class:`TrainingDataError` naming the copies: byte-for-byte ones (content digests), then re-encoded,
    resized, turned or mirrored ones (near duplicates, :mod:`crackscan.data.similar`; every image is
    decoded once for it; ``facts`` holds images already decoded, e.g. by :func:`~crackscan.data.split.make_split`)."""
    copies = find_held_out(train, test_digests)
    if copies:
        raise TrainingDataError(
            f"{len(copies)} training image(s) ({_shown(copies)}) are byte-for-byte copies of test images of the data "
            "sets given to this run: remove the copies (`crackscan data check` lists a set's duplicates)"
        )
    known = facts if facts is not None else {}
    paths = [*train, *test]
    found = {f.path: f for f in map_files(inspect_image, [p for p in paths if p not in known])}
    prints = [(known.get(p) or found[p]).fingerprint for p in paths]
    n = len(train)
    near = sorted({train[p.i] for p in similar_pairs(prints) if p.i < n <= p.j})
    if near:
        raise TrainingDataError(
            f"{len(near)} training image(s) ({_shown(near)}) are near copies (re-encoded, resized, turned or "
            "mirrored) of test images of the data sets given to this run: remove them (`crackscan data check` "
            "lists a set's near duplicates)"
        )


def _shown(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths[:3]) + (" …" if len(paths) > 3 else "")


def launched_as_rank_zero() -> bool:
    """False in the extra processes of a multi-process run (DDP ranks > 0), before any Trainer exists.

    Lightning's own DDP launcher, ``torchrun`` and ``srun`` start every rank at the top of
    the command, so run-folder checks and writes before ``trainer.fit`` must be left to
    rank 0: the others would find its files and stop, or write the same files at once.
    Reads the launchers' variables (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID`` via
    Lightning, plus ``NODE_RANK`` for Lightning's multi-node launch).
    """
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0


def latest_checkpoint(ckpt_dir: Path) -> ModelCheckpoint:
    """Writes ``ckpt_dir/last.ckpt`` after every epoch, the file ``--resume`` continues from.

    Lightning's ``save_last=True`` only refreshes ``last.ckpt`` when the monitored metric
    improves (Lightning 2.6): a run that stopped at epoch 8 after its best at epoch 2
    would resume from epoch 2. This callback does not monitor anything, so it saves every
    epoch, overwriting the one file.
    """
    return ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)


def loggers(run_dir: Path) -> list[Any]:
    """CSV (``logs/metrics.csv``) and TensorBoard loggers, plus MLflow when it is installed."""
    found: list[Any] = [
        CSVLogger(save_dir=str(run_dir), name="logs", version=""),
        TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""),
    ]
    try:  # optional trackers, used when the user has them installed
        import mlflow  # noqa: F401
        from lightning.pytorch.loggers import MLFlowLogger

        found.append(MLFlowLogger(experiment_name="crackscan", tracking_uri=f"file:{run_dir / 'mlruns'}"))
    except ImportError:
        pass
    return found


class EpochLog(Callback):
    """One log line per validated epoch: readable in a ``nohup … > train.log`` file,
    where a progress bar leaves nothing until the run ends."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train_", "val_"))}
        text = ", ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items()))
        log.info("epoch %d/%d: %s", trainer.current_epoch + 1, trainer.max_epochs, text)


def progress_callbacks() -> list[Callback]:
    """A rich progress bar for terminals and a log line per epoch for log files."""
    callbacks: list[Callback] = [EpochLog()]
    try:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    except (ImportError, ModuleNotFoundError):
        pass
    return callbacks


def plot_curves(metrics_csv: Path, out_png: Path, panels: tuple[tuple[str, tuple[str, ...]], ...], title: str) -> None:
    """Per-epoch curves from Lightning's ``metrics.csv``: one panel per (y label, metric keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs: dict[int, dict[str, float]] = {}
    with metrics_csv.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("epoch", "") == "":
                continue
            entry = epochs.setdefault(int(float(row["epoch"])), {})
            entry.update({k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("epoch", "step")})
    xs = sorted(epochs)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (label, keys) in zip(axes, panels, strict=True):
        for key in keys:
            pts = [(x + 1, epochs[x][key]) for x in xs if key in epochs[x]]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_KEEP_BYTES = 2**31 - 1  # mallopt takes an int: the largest it accepts


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the kernel.

    Every training step frees and re-allocates the same hundreds of MB of activations. glibc
    serves blocks over its mmap threshold with fresh ``mmap``s and unmaps them on free, so each
    step page-faults all of it in again, zero-filled: on this project's 2-core machine 41 % of
    a U-Net's training time on 448-px crops went to the kernel, 2.4× slower than with this
    (``benchmarks/train_step_memory.py``). Raising the mmap and trim thresholds keeps it in the
    heap; the process holds its peak memory, which training needs anyway. Returns whether glibc
    took the settings (False elsewhere: macOS, Windows, musl). ``CRACKSCAN_KEEP_FREED_MEMORY=0``
    turns it off.
    """
    if os.environ.get("CRACKSCAN_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))


def make_trainer(
    run_dir: Path,
    *,
    epochs: int,
    accelerator: str,
    devices: str,
    num_nodes: int,
    strategy: str,
    callbacks: list[Callback],
    **options: Any,
) -> L.Trainer:
    """The Lightning Trainer both tasks use; ``options`` go to it as they are (e.g. ``max_time``)."""
    if keep_freed_memory():
        log.debug("malloc keeps freed memory for reuse (mmap and trim thresholds raised)")
    return L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=int(devices) if str(devices).isdigit() else devices,
        num_nodes=num_nodes,
        strategy=strategy,
        callbacks=callbacks,
        logger=loggers(run_dir),
        deterministic=False,
        log_every_n_steps=10,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
        **options,
    )
