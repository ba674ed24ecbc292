"""Classification metrics in numpy only: confusion matrix, precision/recall/F1, ROC and PR.

Conventions (the same as scikit-learn's, so numbers can be compared with papers):

* labels are integer class indices ``0..K-1``; the confusion matrix has true classes
  in rows and predicted classes in columns;
* precision, recall and F1 that divide by zero are 0.0 (scikit-learn's
  ``zero_division=0``);
* ROC-AUC is rank based (Mann–Whitney U with tied scores sharing their mean rank),
  so it equals the trapezoidal area under the ROC curve, ties included; it is NaN when
  only one class is present, because it is undefined then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def _labels(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    integral = np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool
    if arr.size and not integral and not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError(f"{name} must hold integer class indices")
    return arr.astype(np.int64)


def _pair(y_true: ArrayLike, y_other: ArrayLike, other: str) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true")
    o = np.asarray(y_other)
    if o.shape != t.shape:
        raise ValueError(f"y_true and {other} differ in length ({t.shape[0]} vs {o.shape[0] if o.ndim else 0})")
    return t, o


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> np.ndarray:
    """``K×K`` int64 counts: ``cm[i, j]`` = images of true class ``i`` predicted as ``j``.

    ``n_classes`` defaults to ``max(label) + 1`` (at least 1); labels must lie in
    ``0..n_classes-1``.
    """
    t, p = _pair(y_true, y_pred, "y_pred")
    p = _labels(p, "y_pred")
    if n_classes is None:
        n_classes = int(max(t.max(initial=0), p.max(initial=0))) + 1
    if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= n_classes or p.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    flat = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of correct predictions, in [0, 1]; NaN for no samples."""
    t, p = _pair(y_true, y_pred, "y_pred")
    return float(np.mean(t == _labels(p, "y_pred"))) if t.size else float("nan")


def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _f1(precision: float, recall: float) -> float:
    return _safe_div(2.0 * precision * recall, precision + recall)


def precision_recall_f1(y_true: ArrayLike, y_pred: ArrayLike, positive: int = 1) -> tuple[float, float, float]:
    """Precision, recall and F1 of class ``positive`` (each in [0, 1]; 0 when undefined)."""
    t, p = _pair(y_true, y_pred, "y_pred")
    p = _labels(p, "y_pred")
    tp = int(np.sum((t == positive) & (p == positive)))
    fp = int(np.sum((t != positive) & (p == positive)))
    fn = int(np.sum((t == positive) & (p != positive)))
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    return precision, recall, _f1(precision, recall)


def _binary_scores(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, s = _pair(y_true, scores, "scores")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("y_true must be binary (1 = positive, 0 = negative) for ROC/PR")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return t.astype(bool), s


def average_ranks(values: ArrayLike) -> np.ndarray:
    """1-based ranks of ``values`` (ascending); tied values share the mean of their ranks."""
    v = np.asarray(values, dtype=np.float64)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0  # mean of ranks ends-counts+1 .. ends
    return mean_rank[inverse.reshape(-1)]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve of binary ``y_true`` (1 = positive) ranked by ``scores``.

    In [0, 1]: the probability that a random positive scores above a random negative,
    ties counting half. NaN when ``y_true`` holds only one class.
    """
    t, s = _binary_scores(y_true, scores)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(s)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _cumulative_counts(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives when predicting positive for ``score >= threshold``, per distinct score."""
    order = np.argsort(-s, kind="mergesort")  # stable: equal scores keep their order
    s_sorted = s[order]
    t_sorted = t[order]
    # the last index of each run of equal scores: all tied images switch together
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(t_sorted)[last].astype(np.float64)
    fps = (last + 1) - tps
    return tps, fps, s_sorted[last]


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` for predicting positive when ``score >= threshold``.

    Thresholds are the distinct scores in decreasing order, preceded by ``inf`` (nothing
    predicted positive: the point (0, 0)); fpr and tpr rise from 0 to 1. Raises
    ValueError unless both classes are present.
    """
    t, s = _binary_scores(y_true, scores)
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == t.size:
        raise ValueError("a ROC curve needs both positive and negative samples")
    tps, fps, thresholds = _cumulative_counts(t, s)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, thresholds]


def precision_recall_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` for predicting positive when ``score >= threshold``.

    As in scikit-learn: thresholds are the distinct scores in increasing order;
    precision and recall have one more entry, the final point (precision 1, recall 0).
    Recall falls from 1 towards 0, precision is in [0, 1]. Raises ValueError without
    positive samples (recall is undefined then).
    """
    t, s = _binary_scores(y_true, scores)
    if not t.any():
        raise ValueError("a precision-recall curve needs positive samples")
    tps, fps, thresholds = _cumulative_counts(t, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the step-wise PR curve, ``Σ (R_n − R_{n−1}) P_n``, in [0, 1]; NaN without positives."""
    t, s = _binary_scores(y_true, scores)
    if not t.any():
        return float("nan")
    precision, recall, _ = precision_recall_curve(t.astype(np.int64), s)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 (each in [0, 1]) and support (image count) of one row."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


def per_class_scores(cm: np.ndarray, class_names: list[str]) -> list[ClassScores]:
    """One :class:`ClassScores` per class of a confusion matrix, then ``macro avg`` and
    ``weighted avg`` (support-weighted) rows, as in scikit-learn's report."""
    cm = np.asarray(cm)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names")
    rows = []
    for i, name in enumerate(class_names):
        tp = int(cm[i, i])
        precision = _safe_div(tp, cm[:, i].sum())
        recall = _safe_div(tp, cm[i, :].sum())
        rows.append(ClassScores(name, precision, recall, _f1(precision, recall), int(cm[i, :].sum())))
    total = sum(r.support for r in rows)
    k = max(1, len(rows))
    macro = ClassScores(
        "macro avg",
        sum(r.precision for r in rows) / k,
        sum(r.recall for r in rows) / k,
        sum(r.f1 for r in rows) / k,
        total,
    )
    weighted = ClassScores(
        "weighted avg",
        _safe_div(sum(r.precision * r.support for r in rows), total),
        _safe_div(sum(r.recall * r.support for r in rows), total),
        _safe_div(sum(r.f1 * r.support for r in rows), total),
        total,
    )
    return [*rows, macro, weighted]


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, class_names: list[str], *, digits: int = 3) -> str:
    """A text table like scikit-learn's: per-class precision/recall/F1/support, accuracy,
    macro and weighted averages."""
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return report_from_confusion(cm, class_names, digits=digits)


def report_from_confusion(cm: np.ndarray, class_names: list[str], *, digits: int = 3) -> str:
    """:func:`classification_report` from an already computed confusion matrix."""
    scores = per_class_scores(cm, class_names)
    per_class, averages = scores[: len(class_names)], scores[len(class_names) :]
    width = max(len("weighted avg"), *(len(n) for n in class_names), digits)
    col = max(9, digits + 2)
    head = " " * width + "".join(f"{h:>{col}}" for h in ("precision", "recall", "f1-score")) + f"{'support':>{col}}"
    lines = [head, ""]

    def row(r: ClassScores) -> str:
        vals = "".join(f"{v:>{col}.{digits}f}" for v in (r.precision, r.recall, r.f1))
        return f"{r.name:>{width}}{vals}{r.support:>{col}}"

    lines += [row(r) for r in per_class]
    lines.append("")
    total = int(np.asarray(cm).sum())
    acc = _safe_div(np.trace(cm), total)
    lines.append(f"{'accuracy':>{width}}{'':>{col}}{'':>{col}}{acc:>{col}.{digits}f}{total:>{col}}")
    lines += [row(r) for r in averages]
    return "\n".join(lines) + "\n"
