"""How good are the predictions: accuracy, confusion matrix, per-class scores, calibration.

Pure functions of label and probability arrays (`n` samples, `k` classes); none needs the
network. Reductions are done in float64 and returned as Python floats or DataFrames.

    accuracy          = (1/n) Σ_i [ŷ_i = y_i]
    C[t, p]           = #{i : y_i = t, ŷ_i = p}                 rows true, columns predicted
    precision_j       = C[j, j] / Σ_t C[t, j]                   0 when nothing was predicted j
    recall_j          = C[j, j] / Σ_p C[j, p]                   0 when class j never occurs
    F1_j              = 2 precision_j recall_j / (precision_j + recall_j)
    ECE               = Σ_b (n_b / n) |acc_b - conf_b|          over bins of max_j P[i, j]
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import pandas as pd


# ---------------------------------------------------------------- input checks


def _check_labels(y, name: str, k: int | None = None) -> np.ndarray:
    """y as a 1-D non-empty int array (labels in [0, k) when k is given), or an error naming it."""
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {y.dtype}")
    if k is not None:
        bad = (y < 0) | (y >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name}[{i}] = {y[i]} is outside the classes [0, {k})")
    return y


def _check_pair(y_true, y_pred, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _check_labels(y_true, "y_true", k), _check_labels(y_pred, "y_pred", k)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def _check_proba(proba, y) -> tuple[np.ndarray, np.ndarray]:
    """proba: (n, k) rows of probabilities; y: (n,) labels in [0, k)."""
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape[0] == 0 or not np.issubdtype(proba.dtype, np.floating):
        raise ValueError(f"proba must be a non-empty (n, k) float array, got {proba.dtype} {proba.shape}")
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise ValueError("proba must hold probabilities in [0, 1]; did you pass logits? use fnn.predict_proba")
    sums = proba.sum(axis=1, dtype=np.float64)
    off = np.abs(sums - 1) > 1e-3
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"proba rows must sum to 1, row {i} sums to {sums[i]:.4g}")
    y = _check_labels(y, "y", proba.shape[1])
    if y.shape[0] != proba.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels but proba has {proba.shape[0]} rows")
    return proba, y


# ---------------------------------------------------------------- hard predictions


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches, (1/n) Σ_i [y_pred_i = y_true_i]. y_true, y_pred: (n,) int."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, k: int) -> np.ndarray:
    """C: (k, k) int64, C[t, p] = number of samples of true class t predicted as p.

    y_true, y_pred: (n,) int in [0, k). Each pair (t, p) is one cell index t·k + p, so a
    single bincount counts all cells: no loop over samples.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive number of classes, got {k!r}")
    y_true, y_pred = _check_pair(y_true, y_pred, k)
    cells = y_true.astype(np.int64) * k + y_pred
    return np.bincount(cells, minlength=k * k).astype(np.int64).reshape(k, k)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise in float64, 0 where den == 0 (no warning)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def check_confusion_matrix(cm: np.ndarray, class_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """(cm as an array, the names as strings), after checking cm is (k, k) int with k names."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or not np.issubdtype(cm.dtype, np.integer):
        raise ValueError(f"cm must be a square (k, k) integer confusion matrix, got {cm.dtype} {cm.shape}")
    names = [str(name) for name in class_names]
    if len(names) != cm.shape[0]:
        raise ValueError(f"class_names has {len(names)} names but cm has {cm.shape[0]} classes")
    return cm, names


def classification_report(cm: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support from a confusion matrix, plus a macro average.

    cm: (k, k) int, rows true, columns predicted (as `confusion_matrix`).
    class_names: k names, the index of the result.
    Returns a DataFrame with k + 1 rows (the classes, then "macro avg") and columns
    precision, recall, f1 (floats in [0, 1]; 0 where undefined) and support (int: true count;
    the total for "macro avg"). The macro average is the unweighted mean over the k classes.
    """
    cm, names = check_confusion_matrix(cm, class_names)
    hits = np.diag(cm)
    support = cm.sum(axis=1)
    precision = _safe_ratio(hits, cm.sum(axis=0))
    recall = _safe_ratio(hits, support)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    report = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)},
        index=pd.Index(names, name="class"),
    )
    macro = pd.DataFrame(
        {"precision": [precision.mean()], "recall": [recall.mean()], "f1": [f1.mean()], "support": [int(support.sum())]},
        index=pd.Index(["macro avg"], name="class"),
    )
    return pd.concat([report, macro])


# ---------------------------------------------------------------- probabilities


def reliability_table(proba, y, n_bins: int = 15) -> pd.DataFrame:
    """Calibration by confidence bin: is the model right as often as it is sure?

    proba: (n, k) probabilities (rows sum to 1), y: (n,) int true labels.
    Confidence conf_i = max_j proba[i, j], prediction argmax_j. Bin b covers
    (b/n_bins, (b+1)/n_bins]; conf = 0 joins bin 0.
    Returns n_bins rows: bin, lower, upper, confidence (mean conf in the bin), accuracy (fraction
    correct in the bin), count. Empty bins have count 0 and NaN confidence/accuracy.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    proba, y = _check_proba(proba, y)
    conf = proba.max(axis=1).astype(np.float64)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    edges = np.arange(n_bins + 1) / n_bins
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "confidence": mean_conf,
            "accuracy": mean_acc,
            "count": count.astype(np.int64),
        }
    )


def calibration_error(table: pd.DataFrame) -> float:
    """ECE from a reliability table: Σ_b (n_b / n) |accuracy_b - confidence_b| over non-empty bins."""
    filled = table[table["count"] > 0]
    weights = filled["count"].to_numpy(np.float64) / filled["count"].sum()
    gaps = np.abs(filled["accuracy"].to_numpy() - filled["confidence"].to_numpy())
    return float(np.dot(weights, gaps))


def expected_calibration_error(proba, y, n_bins: int = 15) -> float:
    """ECE = Σ_b (n_b/n) |acc_b - conf_b| over n_bins equal-width bins of max probability.

    proba: (n, k) probabilities, y: (n,) int. 0 means perfectly calibrated; bounded by 1.
    """
    return calibration_error(reliability_table(proba, y, n_bins))


def most_confident_errors(proba, y, n: int = 16) -> np.ndarray:
    """Indices of the (at most n) wrong predictions with the highest predicted probability.

    proba: (N, k) probabilities, y: (N,) int -> (≤ n,) int64 row indices into proba, sorted
    by confidence max_j proba[i, j], highest first (ties: lower index first).
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    proba, y = _check_proba(proba, y)
    wrong = np.flatnonzero(proba.argmax(axis=1) != y)
    order = np.argsort(-proba[wrong].max(axis=1), kind="stable")
    return wrong[order[:n]].astype(np.int64)


# ---------------------------------------------------------------- the whole report


@attrs.frozen(eq=False)
class EvaluationReport:
    """Everything `fnn evaluate` reports about predictions `proba` for labels `y`.

    accuracy: float; predicted: (n,) int64 argmax of proba; confusion: (k, k) int64
    (`confusion_matrix`); per_class: `classification_report`; reliability:
    `reliability_table`; calibration_error: its ECE; errors: the most confidently wrong rows,
    a DataFrame with columns index (row of proba), true, predicted (class names) and
    probability (of the wrong prediction), highest first; class_names: the k names.
    """

    accuracy: float
    predicted: np.ndarray
    confusion: np.ndarray
    per_class: pd.DataFrame
    reliability: pd.DataFrame
    calibration_error: float
    errors: pd.DataFrame
    class_names: tuple[str, ...]


def evaluation_report(proba, y, class_names: Sequence[str], n_errors: int = 16) -> EvaluationReport:
    """Score probabilities against labels: accuracy, per-class table, calibration, worst errors.

    proba: (n, k) probabilities (rows sum to 1); y: (n,) int labels in [0, k);
    class_names: k names; n_errors: how many confident mistakes to list (at most).
    """
    proba, y = _check_proba(proba, y)
    names = tuple(str(name) for name in class_names)
    predicted = proba.argmax(axis=1).astype(np.int64)
    cm = confusion_matrix(y, predicted, proba.shape[1])
    reliability = reliability_table(proba, y)
    wrong = most_confident_errors(proba, y, n_errors)
    errors = pd.DataFrame(
        {
            "index": wrong,
            "true": [names[t] for t in y[wrong]],
            "predicted": [names[p] for p in predicted[wrong]],
            "probability": proba[wrong, predicted[wrong]].astype(np.float64),
        }
    )
    return EvaluationReport(
        accuracy=accuracy(y, predicted),
        predicted=predicted,
        confusion=cm,
        per_class=classification_report(cm, names),
        reliability=reliability,
        calibration_error=calibration_error(reliability),
        errors=errors,
        class_names=names,
    )
