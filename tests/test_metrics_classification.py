"""Classification metrics against hand-computed values (and scikit-learn's conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crackscan.metrics.classification import (
    accuracy,
    average_precision,
    average_ranks,
    classification_report,
    confusion_matrix,
    per_class_scores,
    precision_recall_curve,
    precision_recall_f1,
    roc_auc,
    roc_curve,
)

# 8 images, classes 0/1: cm = [[2, 1], [2, 3]]
Y_TRUE = [0, 0, 0, 1, 1, 1, 1, 1]
Y_PRED = [0, 0, 1, 1, 1, 1, 0, 0]

# the scikit-learn documentation's ROC example
Y_ROC = [0, 0, 1, 1]
S_ROC = [0.1, 0.4, 0.35, 0.8]


def test_confusion_matrix_rows_true_columns_predicted() -> None:
    assert confusion_matrix(Y_TRUE, Y_PRED).tolist() == [[2, 1], [2, 3]]
    # classes without images still get their row and column
    assert confusion_matrix([0, 2], [2, 2], n_classes=3).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]
    assert confusion_matrix([], [], n_classes=2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="labels must lie"):
        confusion_matrix([0, 3], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0])


def test_accuracy_precision_recall_f1() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    p, r, f1 = precision_recall_f1(Y_TRUE, Y_PRED, positive=1)
    assert (p, r) == pytest.approx((3 / 4, 3 / 5))
    assert f1 == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))  # 2/3
    p0, r0, f10 = precision_recall_f1(Y_TRUE, Y_PRED, positive=0)
    assert (p0, r0, f10) == pytest.approx((2 / 4, 2 / 3, 4 / 7))
    # nothing predicted positive: precision (and F1) are 0, not NaN
    assert precision_recall_f1([1, 0], [0, 0]) == (0.0, 0.0, 0.0)
    assert math.isnan(accuracy([], []))


def test_average_ranks_share_ties() -> None:
    assert average_ranks([3.0, 1.0, 2.0, 2.0]).tolist() == [4.0, 1.0, 2.5, 2.5]
    assert average_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]


def test_roc_auc_hand_values() -> None:
    assert roc_auc(Y_ROC, S_ROC) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.2, 0.9]) == 1.0
    assert roc_auc([1, 0], [0.2, 0.9]) == 0.0
    # ties count half: pairs (pos 0.5 vs neg 0.5) = 0.5, (0.5 vs 0.2) = 1, 0.9 beats both = 2 → 3.5 / 4
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    # all scores equal: chance
    assert roc_auc([0, 1, 1, 0], [0.3] * 4) == pytest.approx(0.5)
    # undefined with one class only
    assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.5, 0.9]))


def test_roc_auc_equals_pairwise_count_and_curve_area() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # rounded: many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        pos.size * neg.size
    )
    assert roc_auc(y, s) == pytest.approx(pairwise)
    fpr, tpr, _ = roc_curve(y, s)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(pairwise)


def test_roc_curve_points() -> None:
    fpr, tpr, thresholds = roc_curve(Y_ROC, S_ROC)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.8, 0.4, 0.35, 0.1]
    # tied scores switch together: one point for the tie
    fpr, tpr, thresholds = roc_curve([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.2]
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="both"):
        roc_curve([1, 1], [0.2, 0.3])


def test_precision_recall_curve_and_average_precision() -> None:
    precision, recall, thresholds = precision_recall_curve(Y_ROC, S_ROC)
    assert precision.tolist() == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])
    assert recall.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]
    assert thresholds.tolist() == [0.1, 0.35, 0.4, 0.8]
    # AP = Σ ΔR·P = 0.5·(2/3) + 0.5·1
    assert average_precision(Y_ROC, S_ROC) == pytest.approx(0.5 * 2 / 3 + 0.5)
    assert average_precision([0, 1], [0.1, 0.9]) == pytest.approx(1.0)
    assert math.isnan(average_precision([0, 0], [0.1, 0.9]))


def test_per_class_scores_and_averages() -> None:
    rows = {r.name: r for r in per_class_scores(confusion_matrix(Y_TRUE, Y_PRED), ["no_crack", "crack"])}
    assert rows["no_crack"].support == 3 and rows["crack"].support == 5
    assert rows["macro avg"].precision == pytest.approx((0.5 + 0.75) / 2)
    assert rows["macro avg"].recall == pytest.approx((2 / 3 + 0.6) / 2)
    assert rows["macro avg"].f1 == pytest.approx((4 / 7 + 2 / 3) / 2)
    assert rows["weighted avg"].precision == pytest.approx((0.5 * 3 + 0.75 * 5) / 8)
    assert rows["weighted avg"].recall == pytest.approx(5 / 8)
    assert rows["weighted avg"].f1 == pytest.approx((4 / 7 * 3 + 2 / 3 * 5) / 8)
    assert rows["weighted avg"].support == 8


def test_classification_report_text() -> None:
    text = classification_report(Y_TRUE, Y_PRED, ["no_crack", "crack"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[2].split() == ["no_crack", "0.500", "0.667", "0.571", "3"]
    assert lines[3].split() == ["crack", "0.750", "0.600", "0.667", "5"]
    assert lines[5].split() == ["accuracy", "0.625", "8"]
    assert lines[6].split() == ["macro", "avg", "0.625", "0.633", "0.619", "8"]
    assert lines[7].split() == ["weighted", "avg", "0.656", "0.625", "0.631", "8"]
    # columns line up: every number column ends at the same offset
    assert len({len(line) for line in lines if line}) == 1
