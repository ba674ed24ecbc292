"""Evaluation plots: confusion matrix, ROC, precision-recall, misclassified images.

matplotlib is imported lazily (it is in the ``train`` extra, not the base install) and
used without pyplot on an Agg canvas, so no global backend is switched and no display
is needed.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crackscan.metrics.classification import precision_recall_curve, roc_curve

if TYPE_CHECKING:
    from crackscan.evaluation.classification import ClassificationEvaluation

MAX_GRID = 36  # misclassified thumbnails shown (the JSON lists all of them)
THUMB = 128  # px


class PlotsUnavailable(ImportError):
    """matplotlib is not installed; plots are skipped."""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotsUnavailable(
            "matplotlib is not installed, so no plots were drawn (pip install 'crackscan[train]' or matplotlib)"
        ) from None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_confusion(ev: ClassificationEvaluation, path: Path) -> Path:
    """Counts with row-normalised shading (rows: true class)."""
    cm = ev.confusion
    k = len(ev.class_names)
    fig = _figure(1.6 + 1.1 * k, 1.2 + 1.0 * k)
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{frac[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if frac[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(k), ev.class_names)
    ax.set_yticks(range(k), ev.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix (threshold {ev.threshold:g})")
    return _save(fig, path)


def plot_roc(ev: ClassificationEvaluation, path: Path) -> Path:
    fpr, tpr, thresholds = roc_curve(ev.is_crack, ev.crack_prob)
    auc = ev.metrics()["roc_auc"]
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, drawstyle="default", label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    # mark the model's operating point: the first threshold at or below the model's
    at = int(np.searchsorted(-thresholds, -ev.threshold, side="right")) - 1
    ax.plot(fpr[at], tpr[at], "o", color="red", label=f"threshold {ev.threshold:g}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title("ROC, crack class")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(ev: ClassificationEvaluation, path: Path) -> Path:
    precision, recall, _ = precision_recall_curve(ev.is_crack, ev.crack_prob)
    m = ev.metrics()
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", label=f"PR (AP {m['average_precision']:.3f})")
    ax.plot(m["recall"], m["precision"], "o", color="red", label=f"threshold {ev.threshold:g}")
    ax.axhline(float(ev.is_crack.mean()), linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall, crack class")
    ax.legend(loc="lower left")
    return _save(fig, path)


def plot_misclassified(ev: ClassificationEvaluation, path: Path, *, limit: int = MAX_GRID) -> Path | None:
    """A grid of the most confident mistakes; ``None`` when there are none."""
    from crackscan.runtime.preprocess import load_patch

    wrong = ev.misclassified()[:limit]
    if not wrong:
        return None
    cols = min(6, len(wrong))
    rows = math.ceil(len(wrong) / cols)
    fig = _figure(max(2.0 * cols, 6.0), 2.3 * rows + 0.4)  # wide enough for the title
    crack = ev.crack_prob
    for n, i in enumerate(wrong):
        ax = fig.add_subplot(rows, cols, n + 1)
        ax.axis("off")
        # the file may have changed since it was evaluated: then the cell stays empty
        with contextlib.suppress(Exception):
            ax.imshow(load_patch(ev.paths[i], THUMB))
        ax.set_title(
            f"true {ev.class_names[int(ev.y_true[i])]}\npred {ev.class_names[int(ev.y_pred[i])]} "
            f"p={crack[i]:.2f}\n{ev.paths[i].name[:22]}",
            fontsize=7,
        )
    shown = f"{len(wrong)} of {len(ev.misclassified())}"
    fig.suptitle(f"misclassified ({shown}; most confident first; p = crack probability)", fontsize=9)
    return _save(fig, path)


def write_plots(ev: ClassificationEvaluation, out_dir: str | Path) -> list[Path]:
    """Write every plot that is defined for ``ev`` into ``out_dir``; returns their paths.

    ROC needs both classes and PR needs cracks among the images, so either may be
    missing. Raises :class:`PlotsUnavailable` without matplotlib.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _figure(1, 1)  # fail early and once when matplotlib is missing
    written = [plot_confusion(ev, out / "confusion_matrix.png")]
    positives = int(ev.is_crack.sum())
    if 0 < positives < ev.n:
        written.append(plot_roc(ev, out / "roc.png"))
    if positives > 0:
        written.append(plot_pr(ev, out / "pr.png"))
    grid = plot_misclassified(ev, out / "misclassified.png")
    if grid is not None:
        written.append(grid)
    return written
