"""Segmentation metrics in numpy/OpenCV/scikit-image (no torch), shared by training and evaluate.

Training calls these at epoch end on numpy arrays and ``crackscan evaluate`` calls the
same functions on a model's probability maps, so a number in a training log and the
same number in an evaluation report mean exactly the same thing. Full definitions with
worked examples are in ``docs/metrics.md``; in short:

**Binarisation.** A probability map becomes a prediction with ``prob >= threshold``
(the classifier's convention too). Boolean arrays are taken as predictions as they
are; targets are booleans or label arrays where any value > 0 is crack.

**Crack-class pixel metrics (no tolerance).** With TP, FP, FN counted over pixels:
``IoU = TP/(TP+FP+FN)``, ``Dice = F1 = 2TP/(2TP+FP+FN)``, ``precision = TP/(TP+FP)``,
``recall = TP/(TP+FN)``, all in [0, 1].

* **pooled** — TP/FP/FN summed over every pixel of every image, then the ratio (large
  cracks weigh more; this is the headline number);
* **per-image mean** — the ratio per image, then the plain mean over images.

**Empty convention.** A ratio whose denominator is 0 is 1.0 when truth *and* prediction
hold no crack pixel at all (correctly saying "no crack" is a perfect answer), else 0.0
(e.g. precision of an empty prediction on a cracked image). So an image with no crack
in truth or prediction scores 1.0 on every metric and counts in the per-image mean; the
count of such images is reported as ``n_empty`` so a reader can discount them, and
:meth:`PixelCounts.per_image_mean` can exclude them (``empty="exclude"``).

**Tolerance F1 (ODS/OIS).** For thin structures a one-pixel offset of a 2-px-wide crack
should not count as a miss, so, as in the crack literature (BSDS-style boundary
matching without one-to-one assignment), with tolerance ``d`` px (default 2):

* a predicted crack pixel is a true positive if a ground-truth crack pixel lies within
  Euclidean distance ``d`` (distance transform of the truth);
* a ground-truth crack pixel is recalled if a predicted crack pixel lies within ``d``
  (equivalently: the maximum probability over the disk of radius ``d`` around it
  reaches the threshold — one grey dilation serves every threshold);
* ``P = TP_pred / n_pred``, ``R = recalled / n_true``, ``F = 2PR/(P+R)``.

Counts are accumulated per threshold (default the 99 thresholds 0.01 … 0.99), image by
image, so memory does not grow with the data set. **ODS** is the F of the pooled counts
at the single threshold that maximises it over the data set; **OIS** is the mean over
images of each image's best F (the crack-literature definition; BSDS pools the counts
at each image's best threshold instead — that figure is reported as
``ois_f1_pooled``). OIS is always >= the per-image mean F at the ODS threshold; it is
usually but not necessarily >= ODS, because ODS pools counts while OIS averages ratios.
With ``d = 0`` these are the plain pixel metrics (used by :func:`best_threshold`).

**clDice** (Shit et al., CVPR 2021): ``Tprec = |S(P) ∩ G| / |S(P)|`` (how much of the
predicted skeleton lies inside the true mask), ``Tsens = |S(G) ∩ P| / |S(G)|``,
``clDice = 2·Tprec·Tsens / (Tprec + Tsens)`` with ``S`` the skimage skeleton; pooled
(skeleton counts summed over images) and per image, empty convention as above.

**Multi-class.** A ``K×K`` confusion matrix of label indices (truth in rows); per-class
``IoU = C_kk / (row_k + col_k - C_kk)`` and ``Dice = 2C_kk / (row_k + col_k)``; a class
absent from truth and prediction alike has NaN IoU/Dice and is left out of the mean IoU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from numpy.typing import ArrayLike

DEFAULT_TOLERANCE_PX = 2.0
DEFAULT_THRESHOLDS = np.round(np.linspace(0.01, 0.99, 99), 2)
# where a stored threshold is picked (training, `crackscan calibrate`): extremes would be brittle
CALIBRATION_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)

EmptyRule = Literal["one", "exclude"]


def _ratio(num: float, den: float, *, both_empty: bool) -> float:
    """``num/den``; for ``den == 0`` the empty convention: 1.0 if nothing anywhere, else 0.0."""
    if den > 0:
        return float(num) / float(den)
    return 1.0 if both_empty else 0.0


def binarize(pred_or_prob: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """A boolean crack mask: booleans as they are, probabilities as ``prob >= threshold``."""
    arr = np.asarray(pred_or_prob)
    if arr.dtype == bool:
        return arr
    return arr >= threshold


def as_target(target: ArrayLike) -> np.ndarray:
    """A boolean truth mask: booleans as they are, labels/0-255 values as ``value > 0``."""
    arr = np.asarray(target)
    return arr if arr.dtype == bool else arr > 0


def _check_shapes(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in shape ({pred.shape} vs {target.shape})")


# --------------------------------------------------------------------------- pixel counts


@dataclass(frozen=True)
class BinaryCounts:
    """Crack-class pixel counts of one image or a pooled set; metrics are properties in [0, 1]."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @classmethod
    def from_masks(cls, pred: ArrayLike, target: ArrayLike) -> BinaryCounts:
        """Counts of boolean ``pred`` against boolean ``target`` (same shape)."""
        p, t = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
        _check_shapes(p, t)
        tp = int(np.count_nonzero(p & t))
        n_pred, n_true = int(np.count_nonzero(p)), int(np.count_nonzero(t))
        return cls(tp=tp, fp=n_pred - tp, fn=n_true - tp, tn=p.size - n_pred - n_true + tp)

    @property
    def empty(self) -> bool:
        """No crack pixel in truth nor prediction."""
        return self.tp + self.fp + self.fn == 0

    @property
    def iou(self) -> float:
        return _ratio(self.tp, self.tp + self.fp + self.fn, both_empty=self.empty)

    @property
    def dice(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, both_empty=self.empty)

    f1 = dice

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp, both_empty=self.empty)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn, both_empty=self.empty)

    @property
    def background_iou(self) -> float:
        """IoU of the non-crack class (true negatives over everything not a true positive)."""
        return _ratio(self.tn, self.tn + self.fp + self.fn, both_empty=self.tn + self.fp + self.fn == 0)

    @property
    def miou(self) -> float:
        """Mean of crack and background IoU: the "mIoU" most crack papers report (not crack IoU)."""
        return (self.iou + self.background_iou) / 2.0

    @property
    def true_fraction(self) -> float:
        """Fraction of pixels that are crack in truth, in [0, 1]."""
        n = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.fn) / n if n else 0.0

    @property
    def pred_fraction(self) -> float:
        """Fraction of pixels predicted crack, in [0, 1]."""
        n = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.fp) / n if n else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"iou": self.iou, "dice": self.dice, "precision": self.precision, "recall": self.recall}


PIXEL_METRICS = ("iou", "dice", "precision", "recall")


@dataclass
class PixelCounts:
    """Accumulates crack-class pixel counts image by image (pooled and per image).

    >>> acc = PixelCounts()
    >>> for prob, mask in pairs:            # doctest: +SKIP
    ...     acc.update(prob, mask, 0.5)
    >>> acc.iou, acc.per_image_mean("iou")  # doctest: +SKIP
    """

    total: BinaryCounts = field(default_factory=BinaryCounts)
    per_image: list[BinaryCounts] = field(default_factory=list)

    def update(self, pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> BinaryCounts:
        """Add one image (H×W probabilities or booleans vs H×W truth); returns its counts."""
        counts = BinaryCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target))
        self.total = self.total + counts
        self.per_image.append(counts)
        return counts

    @property
    def n(self) -> int:
        return len(self.per_image)

    @property
    def n_empty(self) -> int:
        """Images with no crack pixel in truth nor prediction (score 1.0 by convention)."""
        return sum(c.empty for c in self.per_image)

    @property
    def iou(self) -> float:
        """Pooled crack-class IoU in [0, 1]."""
        return self.total.iou

    @property
    def dice(self) -> float:
        """Pooled Dice (= pixel F1) in [0, 1]."""
        return self.total.dice

    f1 = dice

    @property
    def precision(self) -> float:
        return self.total.precision

    @property
    def recall(self) -> float:
        return self.total.recall

    @property
    def miou(self) -> float:
        """Pooled mean of crack and background IoU."""
        return self.total.miou

    def per_image_mean(self, metric: str, *, empty: EmptyRule = "one") -> float:
        """Mean of ``metric`` (iou, dice, precision, recall) over images, in [0, 1].

        ``empty="one"`` counts images with no crack in truth and prediction as 1.0 (the
        documented default); ``"exclude"`` leaves them out. NaN when no image is left.
        """
        if metric not in PIXEL_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(PIXEL_METRICS)}")
        values = [getattr(c, metric) for c in self.per_image if empty == "one" or not c.empty]
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> dict[str, float]:
        """Pooled metrics plus ``<metric>_per_image_mean`` and ``n``/``n_empty``."""
        out: dict[str, float] = dict(self.total.as_dict())
        for m in PIXEL_METRICS:
            out[f"{m}_per_image_mean"] = self.per_image_mean(m)
        out["n"] = self.n
        out["n_empty"] = self.n_empty
        return out


def iou(pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> float:
    """Crack-class IoU of one image (or any array pair) in [0, 1]; empty convention applies."""
    return BinaryCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target)).iou


def dice(pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> float:
    """Crack-class Dice (= F1) in [0, 1]; empty convention applies."""
    return BinaryCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target)).dice


def precision(pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> float:
    """Crack-class precision in [0, 1]; empty convention applies."""
    return BinaryCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target)).precision


def recall(pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> float:
    """Crack-class recall in [0, 1]; empty convention applies."""
    return BinaryCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target)).recall


# --------------------------------------------------------------------------- tolerance curves


def _disk(radius: float) -> np.ndarray:
    """Footprint of every offset within Euclidean ``radius`` (the same rule as the distance test)."""
    r = int(np.floor(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (xx * xx + yy * yy <= radius * radius + 1e-9).astype(np.uint8)


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px, float32) from every pixel to the nearest True pixel of ``mask``.

    ``inf`` everywhere when ``mask`` is empty. Exact (OpenCV's precise L2 transform).
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    # distanceTransform measures the distance to the nearest zero pixel: invert the mask.
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _count_at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``out[k] = #(values >= thresholds[k])`` for ascending ``thresholds``, in O(N + K)."""
    if values.size == 0:
        return np.zeros(len(thresholds), np.int64)
    # idx = how many thresholds each value reaches; a value counts for every k < idx.
    idx = np.searchsorted(thresholds, values.ravel(), side="right")
    hist = np.bincount(idx, minlength=len(thresholds) + 1)
    return np.cumsum(hist[::-1])[::-1][1:].astype(np.int64)


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return f


@dataclass(frozen=True)
class CurveCounts:
    """Per-threshold tolerance counts of one image or a pooled set (arrays of length K)."""

    tp_pred: np.ndarray  # predicted crack pixels with a true crack pixel within the tolerance
    n_pred: np.ndarray  # predicted crack pixels
    tp_true: np.ndarray  # true crack pixels with a predicted crack pixel within the tolerance
    n_true: int  # true crack pixels (does not depend on the threshold)

    def precision(self) -> np.ndarray:
        empty = (self.n_pred == 0) & (self.n_true == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(self.n_pred > 0, self.tp_pred / np.maximum(self.n_pred, 1), 0.0)
        return np.where(empty, 1.0, p)

    def recall(self) -> np.ndarray:
        empty = (self.n_pred == 0) & (self.n_true == 0)
        r = self.tp_true / self.n_true if self.n_true > 0 else np.zeros(len(self.n_pred))
        return np.where(empty, 1.0, r)

    def f1(self) -> np.ndarray:
        empty = (self.n_pred == 0) & (self.n_true == 0)
        return np.where(empty, 1.0, _f1(self.precision(), self.recall()))


def curve_counts(
    prob: ArrayLike,
    target: ArrayLike,
    thresholds: ArrayLike = DEFAULT_THRESHOLDS,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
) -> CurveCounts:
    """Tolerance counts of one H×W probability map against its truth at every threshold."""
    p = np.asarray(prob)
    # Compare in the map's own precision, as binarize() does: a float32 probability of
    # exactly 0.35 must count at threshold 0.35 here too.
    p = p if p.dtype in (np.float32, np.float64) else p.astype(np.float32)
    t = as_target(target)
    _check_shapes(p, t)
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim != 1 or np.any(np.diff(th) <= 0):
        raise ValueError("thresholds must be a strictly increasing 1-D sequence")
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    if tolerance_px > 0:
        near_true = distance_to(t) <= tolerance_px + 1e-6
        # A true pixel is recalled at threshold k when the best probability within the
        # tolerance disk reaches it: one grey dilation answers every threshold at once.
        reach = cv2.dilate(p, _disk(tolerance_px), borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    else:
        near_true, reach = t, p
    th_cmp = th.astype(p.dtype)
    return CurveCounts(
        tp_pred=_count_at_or_above(p[near_true], th_cmp),
        n_pred=_count_at_or_above(p, th_cmp),
        tp_true=_count_at_or_above(reach[t], th_cmp),
        n_true=int(np.count_nonzero(t)),
    )


@dataclass
class ToleranceCurve:
    """Accumulates per-threshold tolerance counts image by image, for ODS/OIS and PR curves.

    Memory is O(thresholds) for the pooled counts plus two floats per image.
    """

    thresholds: np.ndarray = field(default_factory=lambda: DEFAULT_THRESHOLDS.copy())
    tolerance_px: float = DEFAULT_TOLERANCE_PX
    tp_pred: np.ndarray = field(init=False)
    n_pred: np.ndarray = field(init=False)
    tp_true: np.ndarray = field(init=False)
    n_true: int = field(init=False, default=0)
    best_f1_per_image: list[float] = field(init=False, default_factory=list)
    best_threshold_per_image: list[float] = field(init=False, default_factory=list)
    # pooled counts at each image's best threshold (BSDS's OIS)
    _ois_counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.thresholds = np.asarray(self.thresholds, dtype=np.float64)
        k = len(self.thresholds)
        self.tp_pred = np.zeros(k, np.int64)
        self.n_pred = np.zeros(k, np.int64)
        self.tp_true = np.zeros(k, np.int64)
        self._ois_counts = np.zeros(4, np.int64)  # tp_pred, n_pred, tp_true, n_true

    def update(self, prob: ArrayLike, target: ArrayLike) -> CurveCounts:
        """Add one H×W probability map and its truth; returns the image's counts."""
        c = curve_counts(prob, target, self.thresholds, self.tolerance_px)
        self.tp_pred += c.tp_pred
        self.n_pred += c.n_pred
        self.tp_true += c.tp_true
        self.n_true += c.n_true
        f = c.f1()
        best = int(np.argmax(f))  # first (lowest) threshold among ties
        self.best_f1_per_image.append(float(f[best]))
        self.best_threshold_per_image.append(float(self.thresholds[best]))
        self._ois_counts += np.array([c.tp_pred[best], c.n_pred[best], c.tp_true[best], c.n_true])
        return c

    @property
    def n(self) -> int:
        return len(self.best_f1_per_image)

    @property
    def pooled(self) -> CurveCounts:
        return CurveCounts(self.tp_pred, self.n_pred, self.tp_true, self.n_true)

    @property
    def precision(self) -> np.ndarray:
        """Pooled precision per threshold (the PR curve's y)."""
        return self.pooled.precision()

    @property
    def recall(self) -> np.ndarray:
        """Pooled recall per threshold (the PR curve's x)."""
        return self.pooled.recall()

    @property
    def f1(self) -> np.ndarray:
        """Pooled F1 per threshold."""
        return self.pooled.f1()

    @property
    def ods_index(self) -> int:
        return int(np.argmax(self.f1))

    @property
    def ods_f1(self) -> float:
        """Best pooled F1 over thresholds (one threshold for the whole set), in [0, 1]."""
        return float(self.f1[self.ods_index]) if self.n else float("nan")

    @property
    def ods_threshold(self) -> float:
        return float(self.thresholds[self.ods_index]) if self.n else float("nan")

    @property
    def ois_f1(self) -> float:
        """Mean over images of each image's best F1, in [0, 1]."""
        return float(np.mean(self.best_f1_per_image)) if self.n else float("nan")

    @property
    def ois_f1_pooled(self) -> float:
        """BSDS's OIS: F1 of the counts pooled at each image's best threshold, in [0, 1]."""
        if not self.n:
            return float("nan")
        tp_pred, n_pred, tp_true, n_true = (int(v) for v in self._ois_counts)
        c = CurveCounts(np.array([tp_pred]), np.array([n_pred]), np.array([tp_true]), n_true)
        return float(c.f1()[0])

    def summary(self) -> dict[str, float]:
        return {
            "ods_f1": self.ods_f1,
            "ods_threshold": self.ods_threshold,
            "ois_f1": self.ois_f1,
            "ois_f1_pooled": self.ois_f1_pooled,
            "tolerance_px": float(self.tolerance_px),
        }


def pr_curve(
    probs: Iterable[ArrayLike],
    masks: Iterable[ArrayLike],
    *,
    thresholds: ArrayLike = DEFAULT_THRESHOLDS,
    tolerance_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled ``(precision, recall, thresholds)`` over image pairs, one point per threshold."""
    curve = ToleranceCurve(np.asarray(thresholds, dtype=np.float64), tolerance_px)
    for prob, mask in zip(probs, masks, strict=True):
        curve.update(prob, mask)
    return curve.precision, curve.recall, curve.thresholds


def best_threshold(
    probs: Iterable[ArrayLike],
    masks: Iterable[ArrayLike],
    *,
    thresholds: ArrayLike = DEFAULT_THRESHOLDS,
) -> tuple[float, float]:
    """The threshold maximising pooled pixel F1 (no tolerance) and that F1.

    Ties go to the lowest threshold. Streams the images: memory is O(thresholds).
    """
    curve = ToleranceCurve(np.asarray(thresholds, dtype=np.float64), 0.0)
    for prob, mask in zip(probs, masks, strict=True):
        curve.update(prob, mask)
    if not curve.n:
        raise ValueError("best_threshold needs at least one image")
    return curve.ods_threshold, curve.ods_f1


# --------------------------------------------------------------------------- clDice


def skeleton(mask: ArrayLike) -> np.ndarray:
    """Boolean one-pixel-wide skeleton (scikit-image ``skeletonize``)."""
    from skimage.morphology import skeletonize

    m = np.asarray(mask, dtype=bool)
    return skeletonize(m) if m.any() else np.zeros(m.shape, bool)


@dataclass(frozen=True)
class SkeletonCounts:
    """clDice counts: predicted skeleton in truth, true skeleton in prediction."""

    pred_skel_in_true: int = 0
    pred_skel: int = 0
    true_skel_in_pred: int = 0
    true_skel: int = 0

    def __add__(self, other: SkeletonCounts) -> SkeletonCounts:
        return SkeletonCounts(
            self.pred_skel_in_true + other.pred_skel_in_true,
            self.pred_skel + other.pred_skel,
            self.true_skel_in_pred + other.true_skel_in_pred,
            self.true_skel + other.true_skel,
        )

    @classmethod
    def from_masks(cls, pred: ArrayLike, target: ArrayLike) -> SkeletonCounts:
        p, t = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
        _check_shapes(p, t)
        sp, st = skeleton(p), skeleton(t)
        return cls(
            pred_skel_in_true=int(np.count_nonzero(sp & t)),
            pred_skel=int(np.count_nonzero(sp)),
            true_skel_in_pred=int(np.count_nonzero(st & p)),
            true_skel=int(np.count_nonzero(st)),
        )

    @property
    def empty(self) -> bool:
        return self.pred_skel == 0 and self.true_skel == 0

    @property
    def tprec(self) -> float:
        """Topology precision in [0, 1]."""
        return _ratio(self.pred_skel_in_true, self.pred_skel, both_empty=self.empty)

    @property
    def tsens(self) -> float:
        """Topology sensitivity in [0, 1]."""
        return _ratio(self.true_skel_in_pred, self.true_skel, both_empty=self.empty)

    @property
    def cldice(self) -> float:
        """``2·Tprec·Tsens/(Tprec+Tsens)`` in [0, 1]."""
        tp, ts = self.tprec, self.tsens
        return 2 * tp * ts / (tp + ts) if tp + ts > 0 else 0.0


def cldice(pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> float:
    """clDice of one prediction against its truth, in [0, 1] (1.0 when both are empty)."""
    return SkeletonCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target)).cldice


@dataclass
class ClDiceCounts:
    """Accumulates clDice counts: pooled (:attr:`cldice`) and per image."""

    total: SkeletonCounts = field(default_factory=SkeletonCounts)
    per_image: list[SkeletonCounts] = field(default_factory=list)

    def update(self, pred_or_prob: ArrayLike, target: ArrayLike, threshold: float = 0.5) -> SkeletonCounts:
        c = SkeletonCounts.from_masks(binarize(pred_or_prob, threshold), as_target(target))
        self.total = self.total + c
        self.per_image.append(c)
        return c

    @property
    def cldice(self) -> float:
        """Pooled clDice in [0, 1]."""
        return self.total.cldice

    def per_image_mean(self, *, empty: EmptyRule = "one") -> float:
        values = [c.cldice for c in self.per_image if empty == "one" or not c.empty]
        return float(np.mean(values)) if values else float("nan")


# --------------------------------------------------------------------------- multi-class


@dataclass
class ConfusionMatrix:
    """``K×K`` pixel confusion matrix of label indices (truth rows, prediction columns)."""

    n_classes: int
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.n_classes < 1:
            raise ValueError("n_classes must be >= 1")
        self.matrix = np.zeros((self.n_classes, self.n_classes), np.int64)

    def update(self, pred: ArrayLike, target: ArrayLike) -> None:
        """Add an H×W predicted label array and its H×W truth labels (ints in 0..K-1)."""
        p = np.asarray(pred).astype(np.int64, copy=False).ravel()
        t = np.asarray(target).astype(np.int64, copy=False).ravel()
        if p.shape != t.shape:
            raise ValueError(f"prediction and target differ in size ({p.size} vs {t.size})")
        k = self.n_classes
        if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= k):
            raise ValueError(f"labels must lie in 0..{k - 1}")
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = self.matrix.astype(np.float64)
        return np.diag(m), m.sum(axis=1), m.sum(axis=0)

    def iou(self) -> np.ndarray:
        """Per-class IoU (length K, NaN for a class absent from truth and prediction)."""
        tp, true, pred = self._parts()
        union = true + pred - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def dice(self) -> np.ndarray:
        """Per-class Dice (length K, NaN for a class absent from truth and prediction)."""
        tp, true, pred = self._parts()
        den = true + pred
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, 2 * tp / den, np.nan)

    def mean_iou(self, *, include_background: bool = True) -> float:
        """Mean of the per-class IoUs that are defined (class 0 left out if asked)."""
        values = self.iou()[0 if include_background else 1 :]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")


def per_class_iou(pred: ArrayLike, target: ArrayLike, n_classes: int) -> np.ndarray:
    """Per-class IoU of one label-array pair (NaN for classes absent from both)."""
    cm = ConfusionMatrix(n_classes)
    cm.update(pred, target)
    return cm.iou()


__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TOLERANCE_PX",
    "BinaryCounts",
    "ClDiceCounts",
    "ConfusionMatrix",
    "CurveCounts",
    "PixelCounts",
    "SkeletonCounts",
    "ToleranceCurve",
    "as_target",
    "best_threshold",
    "binarize",
    "cldice",
    "curve_counts",
    "dice",
    "distance_to",
    "iou",
    "per_class_iou",
    "pr_curve",
    "precision",
    "recall",
    "skeleton",
]
