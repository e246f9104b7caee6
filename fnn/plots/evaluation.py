"""Figures of predictions: confusion matrix, calibration, digits with their labels, weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fnn.metrics import calibration_error, check_confusion_matrix
from fnn.params import MLP
from fnn.tree import tree_leaves
from fnn.plots.base import DEV, TRAIN, WRONG, check_columns, image_grid, square_side


# ---------------------------------------------------------------- evaluation


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """The (k, k) confusion matrix, rows true and columns predicted, a count in every cell.

    Cells are shaded by the fraction of their row (the true class), so errors stand out
    even when classes differ in size; zero counts are printed faintly.
    """
    cm, names = check_confusion_matrix(cm, class_names)
    k = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    side = max(5.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    size = 9 if k <= 12 else 7
    for t in range(k):
        for p in range(k):
            color = "white" if share[t, p] > 0.5 else ("black" if cm[t, p] else "lightgray")
            ax.text(p, t, str(cm[t, p]), ha="center", va="center", color=color, fontsize=size)
    long_names = max(len(name) for name in names) > 3
    ax.set_xticks(range(k), names, rotation=40 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else float("nan")
    ax.set_title(f"Confusion matrix ({total} samples, accuracy {accuracy:.4f})")
    return fig


def reliability_diagram(table: pd.DataFrame) -> Figure:
    """Accuracy against confidence per bin, beside the diagonal of perfect calibration.

    table: `fnn.metrics.reliability_table` (bin, lower, upper, confidence, accuracy, count).
    Top: bars of each bin's accuracy, dots at its mean confidence; bars below the diagonal
    mean over-confidence. Bottom: how many samples fall in each bin (log scale).
    """
    check_columns(table, "table", ["lower", "upper", "confidence", "accuracy", "count"])
    filled = table[table["count"] > 0]
    fig = Figure(figsize=(6, 6.5), layout="constrained")
    ax, ax_count = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", label="perfect calibration")
    ax.bar(filled["lower"], filled["accuracy"], width=filled["upper"] - filled["lower"], align="edge",
           color=TRAIN, alpha=0.7, edgecolor="white", label="accuracy in bin")
    ax.plot(filled["confidence"], filled["accuracy"], "o", color=DEV, markersize=4, label="(mean confidence, accuracy)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {calibration_error(table):.4f})")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax_count.bar(table["lower"], table["count"].clip(lower=0), width=table["upper"] - table["lower"], align="edge", color="gray")
    ax_count.set_yscale("symlog", linthresh=1)
    ax_count.set_xlabel("confidence (max predicted probability)")
    ax_count.set_ylabel("samples")
    ax_count.grid(alpha=0.3)
    return fig


def sample_predictions(
    X: np.ndarray,
    y_true: np.ndarray | None,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    n: int = 25,
) -> Figure:
    """The first n images with their predicted (and true) labels; mistakes titled in red.

    X: (m, 784) in [0, 1] (any square image size works), y_pred: (m,) int, y_true: (m,) int
    or None for unlabelled images. Pass rows in the order to show (e.g. most confident errors).
    With no rows (say, a model that made no mistakes) the figure only says so.
    """
    X, y_pred = np.asarray(X), np.asarray(y_pred)
    if X.ndim != 2:
        raise ValueError(f"X must be an (m, 784) array of images in rows, got shape {X.shape}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    if y_pred.shape != (X.shape[0],) or (y_true is not None and np.shape(y_true) != (X.shape[0],)):
        raise ValueError(f"y_pred and y_true must have shape ({X.shape[0]},) to match X, got "
                         f"{y_pred.shape} and {None if y_true is None else np.shape(y_true)}")
    side = square_side(X.shape[1], "X")
    names = [str(name) for name in class_names]
    n = min(n, X.shape[0])
    fig, axes = image_grid(n, cell=(1.5, 1.75))
    for i, ax in enumerate(axes):
        ax.imshow(X[i].reshape(side, side), cmap="gray", vmin=0, vmax=1)
        predicted = names[y_pred[i]]
        if y_true is None:
            ax.set_title(f"pred {predicted}", fontsize=9)
        elif y_true[i] == y_pred[i]:
            ax.set_title(f"{predicted}", fontsize=9)
        else:
            ax.set_title(f"pred {predicted}\ntrue {names[y_true[i]]}", fontsize=9, color=WRONG)
            for spine in ax.spines.values():
                spine.set_color(WRONG)
                spine.set_linewidth(2)
    if n == 0:
        fig.suptitle("No images to show")
    elif y_true is None:
        fig.suptitle(f"Predictions for {n} images")
    else:
        wrong = int(np.sum(np.asarray(y_true)[:n] != y_pred[:n]))
        fig.suptitle(f"Predictions for {n} images ({wrong} wrong, in red)")
    return fig


def first_layer_weights(params: MLP, n: int = 64) -> Figure:
    """What the first layer looks for, red +, blue −, each tile on its own symmetric scale.

    An MLP whose input is a square image (784 = 28x28): the columns W1[:, j] as 28x28 images,
    the n hidden units with the largest weight norm ||W1[:, j]||. A CNN: its first Conv2D's
    filters K[:, :, 0, j] (on the first input channel) as kh x kw images, largest norm first.
    """
    first = next(layer for layer in params.layers if tree_leaves(layer))
    if hasattr(first, "K"):  # a convolution's filters: (kh, kw, C_in, C_out)
        tiles = first.K[:, :, 0, :].reshape(-1, first.K.shape[3])
        shape, what = first.K.shape[:2], f"first convolution's {first.K.shape[0]}x{first.K.shape[1]} filters"
    else:
        tiles = first.W
        side = square_side(tiles.shape[0], "W1")
        shape, what = (side, side), "first-layer weights"
    n = min(n, tiles.shape[1])
    units = np.argsort(-np.linalg.norm(tiles, axis=0), kind="stable")[:n]
    fig, axes = image_grid(n, cell=(1.3, 1.45))
    for unit, ax in zip(units, axes):
        w = tiles[:, unit].reshape(shape)
        limit = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {unit}", fontsize=8)
    fig.suptitle(f"The {what}\n{n} of {tiles.shape[1]} units, largest norm first")
    return fig
