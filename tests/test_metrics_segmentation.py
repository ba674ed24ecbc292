"""Segmentation metrics against hand-computed values on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackscan.metrics.segmentation import (
    DEFAULT_THRESHOLDS,
    BinaryCounts,
    ClDiceCounts,
    ConfusionMatrix,
    PixelCounts,
    SkeletonCounts,
    ToleranceCurve,
    best_threshold,
    cldice,
    curve_counts,
    dice,
    distance_to,
    iou,
    per_class_iou,
    pr_curve,
    precision,
    recall,
)

# 2×4 worked example: TP=2 (cols 0,1 of row 0), FP=1 (row 0 col 2), FN=1 (row 1 col 0), TN=4.
TRUE = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.uint8)
PROB = np.array([[0.9, 0.6, 0.7, 0.1], [0.4, 0.0, 0.2, 0.3]], np.float32)


def line_mask(shape: tuple[int, int], row: int, width: int = 1, lo: int = 4, hi: int | None = None) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[row : row + width, lo : (hi if hi is not None else shape[1] - 4)] = True
    return m


def test_pixel_metrics_hand_computed() -> None:
    c = BinaryCounts.from_masks(PROB >= 0.5, TRUE > 0)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 4)
    assert iou(PROB, TRUE) == pytest.approx(2 / 4)
    assert dice(PROB, TRUE) == pytest.approx(4 / 6)
    assert precision(PROB, TRUE) == pytest.approx(2 / 3)
    assert recall(PROB, TRUE) == pytest.approx(2 / 3)
    # threshold is inclusive: prob >= threshold is crack
    assert iou(PROB, TRUE, threshold=0.6) == pytest.approx(2 / 4)
    assert iou(PROB, TRUE, threshold=0.61) == pytest.approx(1 / 4)  # TP 1, FP 1 (0.7), FN 2
    # booleans are used as they are, whatever the threshold
    assert iou(PROB >= 0.5, TRUE, threshold=0.99) == pytest.approx(0.5)
    # 0/255 truth works as well as 0/1
    assert iou(PROB, TRUE * 255) == pytest.approx(0.5)
    # background IoU: TN / (TN + FP + FN) = 4/6; mIoU is the mean of the two classes
    assert c.background_iou == pytest.approx(4 / 6)
    assert c.miou == pytest.approx((2 / 4 + 4 / 6) / 2)
    assert BinaryCounts(tp=5).background_iou == 1.0  # all crack in truth and prediction


def test_pooled_differs_from_per_image_mean() -> None:
    acc = PixelCounts()
    big_t = np.zeros((10, 10), bool)
    big_t[:5] = True  # 50 crack pixels, all found
    acc.update(big_t.astype(np.float32), big_t)
    small_t = np.zeros((10, 10), bool)
    small_t[0, :2] = True  # 2 crack pixels, none found, 2 false positives
    small_p = np.zeros((10, 10), bool)
    small_p[9, :2] = True
    acc.update(small_p, small_t)
    # pooled: TP 50, FP 2, FN 2 → IoU 50/54; per image: (1 + 0) / 2
    assert acc.iou == pytest.approx(50 / 54)
    assert acc.dice == pytest.approx(100 / 104)
    assert acc.precision == pytest.approx(50 / 52)
    assert acc.recall == pytest.approx(50 / 52)
    assert acc.per_image_mean("iou") == pytest.approx(0.5)
    assert acc.n == 2 and acc.n_empty == 0
    s = acc.summary()
    assert s["iou_per_image_mean"] == pytest.approx(0.5) and s["n"] == 2
    with pytest.raises(ValueError, match="unknown metric"):
        acc.per_image_mean("accuracy")


def test_empty_image_convention() -> None:
    empty = np.zeros((8, 8), bool)
    crack = line_mask((8, 8), 3, lo=1, hi=7)
    # nothing in truth nor prediction: a perfect "no crack" answer
    assert iou(empty, empty) == dice(empty, empty) == precision(empty, empty) == recall(empty, empty) == 1.0
    # false alarm on a clean image / missed crack: 0 everywhere
    assert iou(crack, empty) == precision(crack, empty) == recall(crack, empty) == 0.0
    assert iou(empty, crack) == precision(empty, crack) == recall(empty, crack) == 0.0
    acc = PixelCounts()
    acc.update(crack, crack)
    acc.update(empty, empty)
    acc.update(empty, crack)
    assert acc.n_empty == 1
    assert acc.per_image_mean("iou") == pytest.approx(2 / 3)
    assert acc.per_image_mean("iou", empty="exclude") == pytest.approx(1 / 2)
    only_empty = PixelCounts()
    only_empty.update(empty, empty)
    assert only_empty.iou == 1.0
    assert math.isnan(only_empty.per_image_mean("iou", empty="exclude"))


def test_distance_transform_exact() -> None:
    m = np.zeros((9, 9), bool)
    m[4, 4] = True
    d = distance_to(m)
    assert d[4, 4] == 0 and d[4, 6] == pytest.approx(2.0) and d[5, 6] == pytest.approx(math.sqrt(5), abs=1e-4)
    assert np.isinf(distance_to(np.zeros((3, 3), bool))).all()


@pytest.mark.parametrize("shift", [1, 2])
def test_tolerance_forgives_small_shifts(shift: int) -> None:
    truth = line_mask((32, 32), 10)
    pred = line_mask((32, 32), 10 + shift).astype(np.float32)
    tol = ToleranceCurve(tolerance_px=2)
    tol.update(pred, truth)
    exact = ToleranceCurve(tolerance_px=0)
    exact.update(pred, truth)
    assert tol.ods_f1 == pytest.approx(1.0)
    assert tol.ois_f1 == pytest.approx(1.0)
    assert exact.ods_f1 < 1.0
    assert exact.ods_f1 == pytest.approx(0.0)


def test_tolerance_does_not_forgive_three_pixels_and_is_euclidean() -> None:
    truth = line_mask((32, 32), 10)
    c = ToleranceCurve(tolerance_px=2)
    c.update(line_mask((32, 32), 13).astype(np.float32), truth)
    assert c.ods_f1 == pytest.approx(0.0)
    # a diagonal offset of (1, 2) is sqrt(5) > 2 px: not matched
    t = np.zeros((9, 9), bool)
    t[4, 4] = True
    p = np.zeros((9, 9), np.float32)
    p[5, 6] = 1.0
    assert curve_counts(p, t, [0.5], 2.0).tp_pred[0] == 0
    p2 = np.zeros((9, 9), np.float32)
    p2[5, 5] = 1.0  # sqrt(2) away
    cc = curve_counts(p2, t, [0.5], 2.0)
    assert (cc.tp_pred[0], cc.n_pred[0], cc.tp_true[0], cc.n_true) == (1, 1, 1, 1)


def test_tolerance_counts_hand_computed() -> None:
    # truth: one 6-px row; prediction covers 3 of its pixels + 1 px at distance 1 + 1 px far away
    t = np.zeros((10, 10), bool)
    t[2, 2:8] = True
    p = np.zeros((10, 10), np.float32)
    p[2, 2:5] = 0.8
    p[3, 9] = 0.6  # nearest truth pixel (2, 7): sqrt(1 + 4) > 2 → false positive
    p[3, 7] = 0.6  # distance 1: true positive; recalls (2, 5..7)? (2,5): sqrt(1+4) no; (2,6) sqrt2 yes; (2,7) yes
    p[8, 8] = 0.9  # far: false positive
    c = curve_counts(p, t, [0.5, 0.7], 2.0)
    # threshold 0.5: predicted 6, TP 4 (the three + (3,7)); recalled: (2,2..4) via themselves,
    # (2,5),(2,6) within 2 of (2,4)/(3,7), (2,7) → all 6
    assert c.n_pred.tolist() == [6, 4]
    assert c.tp_pred.tolist() == [4, 3]
    # threshold 0.7: prediction (2,2..4) + (8,8): recalls (2,2..6) = 5
    assert c.tp_true.tolist() == [6, 5]
    assert c.n_true == 6
    np.testing.assert_allclose(c.precision(), [4 / 6, 3 / 4])
    np.testing.assert_allclose(c.recall(), [1.0, 5 / 6])


def random_probs(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    blurred = truth.astype(np.float32) * rng.uniform(0.3, 1.0) + rng.uniform(0, 0.6, truth.shape).astype(np.float32)
    return np.clip(blurred, 0, 1)


def test_ods_and_ois_bounds() -> None:
    rng = np.random.default_rng(3)
    curve = ToleranceCurve()
    pairs = []
    for i in range(6):
        truth = line_mask((24, 24), 3 + 3 * i, width=1 + i % 3)
        prob = random_probs(rng, truth)
        pairs.append((prob, truth))
        curve.update(prob, truth)
    fixed_f1 = []
    for th in (0.2, 0.5, 0.8):
        k = int(np.argmin(np.abs(curve.thresholds - th)))
        fixed_f1.append(curve.f1[k])
        # ODS ≥ F1 at any fixed threshold
        assert curve.ods_f1 >= curve.f1[k] - 1e-12
    assert curve.ois_f1 >= curve.ods_f1 - 1e-12
    # always true: OIS ≥ the per-image mean F at the ODS threshold
    per_image_at_ods = [curve_counts(p, t).f1()[curve.ods_index] for p, t in pairs]
    assert curve.ois_f1 >= float(np.mean(per_image_at_ods)) - 1e-12
    assert 0 <= curve.ois_f1_pooled <= 1
    assert curve.ods_threshold in DEFAULT_THRESHOLDS
    assert len(curve.precision) == len(curve.recall) == 99
    s = curve.summary()
    assert set(s) >= {"ods_f1", "ods_threshold", "ois_f1", "tolerance_px"}


def test_ois_picks_each_image_best_threshold() -> None:
    # image A separates at 0.3, image B at 0.7: one threshold cannot serve both perfectly
    t = line_mask((16, 16), 5)
    a = np.where(t, 0.35, 0.25).astype(np.float32)
    b = np.where(t, 0.75, 0.65).astype(np.float32)
    curve = ToleranceCurve(tolerance_px=0)
    curve.update(a, t)
    curve.update(b, t)
    assert curve.ois_f1 == pytest.approx(1.0)
    assert curve.ois_f1_pooled == pytest.approx(1.0)
    assert curve.ods_f1 < 1.0
    assert curve.best_threshold_per_image[0] <= 0.35 < curve.best_threshold_per_image[1] <= 0.75


def test_best_threshold_and_pr_curve() -> None:
    t = line_mask((16, 16), 5)
    p = np.where(t, 0.62, 0.3).astype(np.float32)
    p[0, 0] = 0.8  # one confident false positive
    th, f1 = best_threshold([p], [t])
    assert 0.3 < th <= 0.62 and f1 == pytest.approx(2 * 8 / (2 * 8 + 1))
    assert best_threshold([p], [t], thresholds=[0.5, 0.7]) == (0.5, pytest.approx(16 / 17))
    prec, rec, ths = pr_curve([p], [t], thresholds=[0.2, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(rec, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(prec[:3], [8 / 256, 8 / 9, 0.0])
    assert ths.tolist() == [0.2, 0.5, 0.7, 0.9]
    with pytest.raises(ValueError):
        best_threshold([], [])
    with pytest.raises(ValueError, match="increasing"):
        curve_counts(p, t, [0.5, 0.4])


def test_empty_truth_in_curves() -> None:
    empty = np.zeros((8, 8), bool)
    curve = ToleranceCurve()
    curve.update(np.full((8, 8), 0.2, np.float32), empty)
    # best: a threshold above 0.2 predicts nothing on a clean image → F 1.0
    assert curve.ois_f1 == 1.0 and curve.best_threshold_per_image[0] > 0.2
    assert curve.ods_f1 == 1.0


def test_cldice_identical_disjoint_thickened() -> None:
    line = line_mask((32, 32), 15, width=1)
    assert cldice(line, line) == pytest.approx(1.0)
    assert cldice(line, line_mask((32, 32), 25)) == 0.0
    # a prediction three times as thick as the truth: the true line lies inside it (Tsens 1)
    # and its skeleton is the centre line, i.e. the truth, up to one end pixel of the
    # thinning (Tprec 22/23) — clDice barely moves where pixel IoU drops to 1/3
    thick = line_mask((32, 32), 14, width=3)
    c_thick = SkeletonCounts.from_masks(thick, line)
    assert c_thick.tsens == 1.0
    assert c_thick.tprec > 0.95
    assert cldice(thick, line) > 0.95
    assert iou(thick, line) == pytest.approx(1 / 3)
    # a prediction covering only half the line: Tprec 1, Tsens ≈ 1/2 → clDice ≈ 2/3
    half = line_mask((32, 32), 15, lo=4, hi=16)
    c = SkeletonCounts.from_masks(half, line)
    assert c.tprec == pytest.approx(1.0)
    assert c.tsens == pytest.approx(12 / 24)
    assert c.cldice == pytest.approx(2 * 0.5 / 1.5)
    empty = np.zeros((32, 32), bool)
    assert cldice(empty, empty) == 1.0 and cldice(line, empty) == 0.0 and cldice(empty, line) == 0.0
    acc = ClDiceCounts()
    acc.update(line, line)
    acc.update(half, line)
    assert acc.per_image_mean() == pytest.approx((1 + 2 / 3) / 2)
    assert acc.cldice == pytest.approx(2 * 1.0 * (36 / 48) / (1 + 36 / 48))


def test_multiclass_confusion_and_iou() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    cm = ConfusionMatrix(4)
    cm.update(pred, truth)
    assert cm.matrix[:3, :3].tolist() == [[2, 1, 0], [0, 3, 0], [1, 0, 1]]
    iou_k = cm.iou()
    # class 0: TP 2, row 3, col 3 → 2/4; class 1: 3/(3+4-3) = 3/4; class 2: 1/(2+1-1) = 1/2; class 3 absent
    np.testing.assert_allclose(iou_k[:3], [0.5, 0.75, 0.5])
    assert math.isnan(iou_k[3])
    np.testing.assert_allclose(cm.dice()[:3], [4 / 6, 6 / 7, 2 / 3])
    assert cm.mean_iou() == pytest.approx((0.5 + 0.75 + 0.5) / 3)
    assert cm.mean_iou(include_background=False) == pytest.approx((0.75 + 0.5) / 2)
    np.testing.assert_allclose(per_class_iou(pred, truth, 3), [0.5, 0.75, 0.5])
    with pytest.raises(ValueError, match=r"0\.\.2"):
        per_class_iou(pred, truth + 1, 3)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        iou(np.zeros((4, 4)), np.zeros((4, 5)))
