"""Metrics: counting identities, calibration toy cases, and scikit-learn as a cross-check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.metrics import (
    accuracy,
    calibration_error,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    most_confident_errors,
    reliability_table,
)

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def label_pairs(draw, max_k: int = 6, max_n: int = 60):
    """(y_true, y_pred, k) with n >= 1 labels in [0, k)."""
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, max_n))
    labels = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return np.array(draw(labels), dtype=np.int64), np.array(draw(labels), dtype=np.int64), k


@st.composite
def proba_and_labels(draw, max_k: int = 5, max_n: int = 50):
    """(proba (n, k) rows summing to 1, y (n,), seed) from a seeded Dirichlet."""
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.full(k, draw(st.sampled_from([0.1, 1.0, 5.0]))), size=n)
    return proba, rng.integers(0, k, size=n), seed


# ---------------------------------------------------------------- confusion matrix and accuracy


@SETTINGS
@given(label_pairs())
def test_confusion_matrix_counts_every_sample_once(pair):
    y_true, y_pred, k = pair
    cm = confusion_matrix(y_true, y_pred, k)
    assert cm.shape == (k, k) and cm.dtype == np.int64 and (cm >= 0).all()
    assert cm.sum() == len(y_true)
    assert np.array_equal(cm.sum(axis=1), np.bincount(y_true, minlength=k))
    assert np.array_equal(cm.sum(axis=0), np.bincount(y_pred, minlength=k))
    assert np.trace(cm) / len(y_true) == pytest.approx(accuracy(y_true, y_pred))


@SETTINGS
@given(label_pairs(), st.integers(0, 2**32 - 1))
def test_metrics_do_not_depend_on_sample_order(pair, seed):
    y_true, y_pred, k = pair
    perm = np.random.default_rng(seed).permutation(len(y_true))
    assert np.array_equal(confusion_matrix(y_true[perm], y_pred[perm], k), confusion_matrix(y_true, y_pred, k))
    assert accuracy(y_true[perm], y_pred[perm]) == pytest.approx(accuracy(y_true, y_pred))


def test_confusion_matrix_orientation_rows_true_columns_predicted():
    cm = confusion_matrix(np.array([0, 0, 1, 2]), np.array([1, 1, 1, 0]), 3)
    assert cm[0, 1] == 2 and cm[1, 1] == 1 and cm[2, 0] == 1 and cm.sum() == 4


def test_accuracy_small_case():
    assert accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: accuracy(np.array([1, 2]), np.array([1])), ValueError, "same length"),
        (lambda: accuracy(np.array([]), np.array([])), ValueError, "non-empty"),
        (lambda: accuracy(np.array([0.5]), np.array([1])), TypeError, "y_true must hold integer"),
        (lambda: confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3), ValueError, "y_true[1] = 3 is outside"),
        (lambda: confusion_matrix(np.array([0]), np.array([0]), 0), ValueError, "k must be"),
    ],
)
def test_label_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


# ---------------------------------------------------------------- classification report


def test_report_handles_empty_classes_without_warnings():
    # class 2 never occurs and is never predicted: its scores are 0, not NaN, with no warning
    cm = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = classification_report(cm, ["a", "b", "c"])
    assert list(report.index) == ["a", "b", "c", "macro avg"]
    assert list(report.columns) == ["precision", "recall", "f1", "support"]
    assert report.loc["a", "precision"] == 1.0 and report.loc["a", "recall"] == 0.5
    assert report.loc["b", "precision"] == pytest.approx(2 / 3) and report.loc["b", "recall"] == 1.0
    assert report.loc["c"].tolist() == [0.0, 0.0, 0.0, 0]
    assert report.loc["macro avg", "support"] == 4
    assert report.loc["macro avg", "recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert not report.isna().any().any()


def test_report_checks_names_and_shape():
    with pytest.raises(ValueError, match="class_names has 2 names but cm has 3"):
        classification_report(np.eye(3, dtype=np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="square"):
        classification_report(np.ones((2, 3), dtype=np.int64), ["a", "b"])


@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
@SETTINGS
@given(label_pairs())
@pytest.mark.slow  # importing scikit-learn takes 4 s
def test_report_matches_scikit_learn(pair):
    import sklearn.metrics as sklearn_metrics
    y_true, y_pred, k = pair
    cm = confusion_matrix(y_true, y_pred, k)
    labels = list(range(k))
    assert np.array_equal(cm, sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels))
    p, r, f, s = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0.0
    )
    report = classification_report(cm, [f"c{j}" for j in labels])
    per_class = report.iloc[:k]
    np.testing.assert_allclose(per_class["precision"], p, atol=1e-12)
    np.testing.assert_allclose(per_class["recall"], r, atol=1e-12)
    np.testing.assert_allclose(per_class["f1"], f, atol=1e-12)
    assert np.array_equal(per_class["support"], s)
    np.testing.assert_allclose(report.loc["macro avg", ["precision", "recall", "f1"]], [p.mean(), r.mean(), f.mean()], atol=1e-12)


# ---------------------------------------------------------------- calibration


@SETTINGS
@given(st.lists(st.sampled_from([0.6, 0.7, 0.8, 0.9, 1.0]), min_size=1, max_size=5, unique=True))
def test_ece_is_zero_when_accuracy_equals_confidence(confidences):
    # ten samples per confidence c: predicted class 0 with probability c, right for exactly 10c of them
    proba = np.array([[c, 1 - c] for c in confidences for _ in range(10)])
    y = np.array([0 if i < round(10 * c) else 1 for c in confidences for i in range(10)])
    assert expected_calibration_error(proba, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_confident_mistakes_is_the_gap():
    proba = np.array([[0.9, 0.1]] * 4)
    assert expected_calibration_error(proba, np.array([1, 1, 1, 1])) == pytest.approx(0.9)
    assert expected_calibration_error(proba, np.array([0, 0, 1, 1])) == pytest.approx(0.4)


@pytest.mark.slow
@SETTINGS
@given(proba_and_labels(), st.integers(1, 20))
def test_reliability_table_partitions_the_samples(case, n_bins):
    proba, y, seed = case
    table = reliability_table(proba, y, n_bins)
    assert len(table) == n_bins and table["count"].sum() == len(y)
    filled = table[table["count"] > 0]
    assert ((filled["confidence"] > filled["lower"] - 1e-12) & (filled["confidence"] <= filled["upper"] + 1e-12)).all()
    assert table.loc[table["count"] == 0, ["confidence", "accuracy"]].isna().all().all()
    overall = (filled["accuracy"] * filled["count"]).sum() / len(y)
    assert overall == pytest.approx(accuracy(y, proba.argmax(axis=1)))
    ece = expected_calibration_error(proba, y, n_bins)
    assert 0.0 <= ece <= 1.0 and ece == calibration_error(table)
    perm = np.random.default_rng(seed).permutation(len(y))
    assert expected_calibration_error(proba[perm], y[perm], n_bins) == pytest.approx(ece)


def test_proba_errors_point_at_logits():
    with pytest.raises(ValueError, match="did you pass logits"):
        expected_calibration_error(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="row 1 sums to 0.5"):
        reliability_table(np.array([[0.5, 0.5], [0.25, 0.25]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="y has 1 labels but proba has 2 rows"):
        most_confident_errors(np.full((2, 2), 0.5), np.array([0]))


# ---------------------------------------------------------------- most confident errors


@SETTINGS
@given(proba_and_labels(), st.integers(0, 20))
def test_most_confident_errors_are_the_top_wrong_ones(case, n):
    proba, y, _ = case
    before = proba.copy()
    idx = most_confident_errors(proba, y, n)
    assert np.array_equal(proba, before)
    conf, wrong = proba.max(axis=1), proba.argmax(axis=1) != y
    assert idx.dtype == np.int64 and len(idx) == min(n, wrong.sum()) and len(set(idx)) == len(idx)
    assert wrong[idx].all()
    assert (np.diff(conf[idx]) <= 0).all()
    if len(idx):
        others = np.setdiff1d(np.flatnonzero(wrong), idx)
        assert (conf[others] <= conf[idx[-1]]).all()


def test_most_confident_errors_small_case():
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    assert most_confident_errors(proba, np.array([1, 1, 1, 0])).tolist() == [0, 3, 2]
