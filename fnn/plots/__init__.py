"""Figures of a run: curves, confusion matrix, digits, weights, health, tuning, calibration.

Every function builds and returns a `matplotlib.figure.Figure` directly — no pyplot, so no
global figure registry, no backend to select and nothing to close — and never shows it.
Writing it is the caller's: `save_figure(fig, path)` renders it atomically (see `fnn.files`).

History tables are those of `fnn.fit`: columns step, epoch, lr, seconds, train_loss,
train_acc, dev_loss, dev_acc (NaN without a dev set), then per layer l = 1..L grad_norm_<l>,
update_ratio_<l>, and for hidden layers dead_frac_<l>.

`run_figures` and `evaluation_figures` build the sets of figures `fnn train` and `fnn evaluate`
write, so a script gets the same pictures as the command line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fnn.files import atomic_path
from fnn.metrics import EvaluationReport, confusion_matrix
from fnn.nn import predict_proba
from fnn.params import MLP
from fnn.plots.base import DEV, TRAIN, WRONG
from fnn.plots.evaluation import confusion_matrix_figure, first_layer_weights, reliability_diagram, sample_predictions
from fnn.plots.augmentation import augmented_samples
from fnn.plots.training import layer_labels, optimizer_comparison, training_health, training_metrics, tuning_heatmap

__all__ = [
    "DEV", "TRAIN", "WRONG", "augmented_samples", "confusion_matrix_figure", "evaluation_figures", "first_layer_weights",
    "layer_labels", "optimizer_comparison", "reliability_diagram", "run_figures", "sample_predictions",
    "save_figure", "training_health", "training_metrics", "tuning_heatmap",
]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render `fig` to `path` atomically; the format follows the suffix (PNG when there is none).

    Returns the path written. The figure is left as it was (nothing is closed or shown).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


# ---------------------------------------------------------------- the sets the commands write


def run_figures(params: MLP, history: pd.DataFrame, X: np.ndarray, y: np.ndarray,
                class_names: Sequence[str], n_samples: int = 25, *, split: str | None = None,
                data: str | None = None) -> dict[str, Figure]:
    """The figures of a training run, by file stem: training_metrics, training_health,
    first_layer_weights, and on the labelled rows X: (m, n) / y: (m,) int (say, the test
    split) confusion_matrix and sample_predictions (n_samples evenly spaced rows: a split keeps
    file order, and files may be sorted by class).

    split: the name of the split X, y are ("test"), data: the data set's ("sample"); both are
    named in the titles (the history's curves are always of the train and dev splits)."""
    proba = predict_proba(params, X)
    predicted = proba.argmax(axis=1)
    rows = np.unique(np.linspace(0, len(X) - 1, n_samples).round().astype(np.int64))
    cm = confusion_matrix(y, predicted, len(class_names))
    return {
        "training_metrics": training_metrics(history, data=data),
        "training_health": training_health(history, params, data=data),
        "first_layer_weights": first_layer_weights(params, data=data),
        "confusion_matrix": confusion_matrix_figure(cm, class_names, split=split, data=data),
        "sample_predictions": sample_predictions(
            X[rows], y[rows], predicted[rows], class_names, n=len(rows), rows=rows,
            confidence=proba[rows, predicted[rows]], split=split, data=data,
        ),
    }


def evaluation_figures(report: EvaluationReport, X: np.ndarray, *, split: str | None = None,
                       data: str | None = None) -> dict[str, Figure]:
    """The figures of `fnn evaluate`, by file stem: confusion_matrix, reliability_diagram and,
    when there are mistakes, confident_errors (the report's errors, X: the rows it scored,
    each shown with its row number and the wrong class's probability). split, data: what X
    is, named in the titles."""
    figures = {
        "confusion_matrix": confusion_matrix_figure(report.confusion, report.class_names, split=split, data=data),
        "reliability_diagram": reliability_diagram(report.reliability, split=split, data=data),
    }
    wrong = report.errors["index"].to_numpy(np.int64)
    if len(wrong):
        true = np.array([report.class_names.index(name) for name in report.errors["true"]], dtype=np.int64)
        figures["confident_errors"] = sample_predictions(
            X[wrong], true, report.predicted[wrong], report.class_names, n=len(wrong), rows=wrong,
            confidence=report.errors["probability"].to_numpy(np.float64), split=split, data=data,
            title=f"The {len(wrong)} most confident mistakes",
        )
    return figures
