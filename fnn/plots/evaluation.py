"""Figures of predictions: confusion matrix, calibration, digits with their labels, weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from fnn.metrics import calibration_error, check_confusion_matrix
from fnn.params import MLP
from fnn.tree import tree_leaves
from fnn.plots.base import DEV, TRAIN, WRONG, check_columns, image_grid, on, square_side

WEIGHTS = "RdBu_r"  # weights: red +, blue −, white 0
CORRECT, CORRECT_FILL = "#1b5e20", "#dcedc8"  # the confusion matrix's diagonal: text, cell


# ---------------------------------------------------------------- evaluation


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str], *, split: str | None = None,
                            data: str | None = None) -> Figure:
    """The (k, k) confusion matrix, rows true and columns predicted, its count in every cell.

    The mistakes are what a reader looks for, so they get the colour scale to themselves:
    off-diagonal cells are shaded by their count, from 0 to the largest mistake count (a
    colour bar says so), and the diagonal (correct predictions, usually far larger) is drawn
    apart, in green, outside that scale. Zero counts are printed faintly.
    split, data: named in the title ("test split of sample"), e.g. "test" and the data set.
    """
    cm, names = check_confusion_matrix(cm, class_names)
    k = cm.shape[0]
    diagonal = np.eye(k, dtype=bool)
    most = max(int(cm[~diagonal].max(initial=0)), 1)
    side = max(5.0, 0.55 * k + 2.5)
    fig = Figure(figsize=(side + 1.2, side + 0.3), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_where(diagonal | (cm == 0), cm), cmap="Reds", vmin=0, vmax=most)  # 0: white
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="wrong predictions in the cell (off-diagonal only)")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    size = 9 if k <= 12 else 7
    for t in range(k):
        ax.add_patch(Rectangle((t - 0.5, t - 0.5), 1, 1, facecolor=CORRECT_FILL, edgecolor="none"))
        for p in range(k):
            if t == p:
                color, weight = CORRECT, "bold"
            else:
                color, weight = ("white" if cm[t, p] > 0.6 * most else "black") if cm[t, p] else "lightgray", "normal"
            ax.text(p, t, str(cm[t, p]), ha="center", va="center", color=color, fontsize=size, fontweight=weight)
    ax.set_xticks(np.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    long_names = max(len(name) for name in names) > 3
    ax.set_xticks(range(k), names, rotation=40 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(cm.sum())
    wrong = total - int(np.trace(cm))
    accuracy = f"{np.trace(cm) / total:.4f}" if total else "undefined"
    ax.set_title(
        f"Confusion matrix{on(split, data)}\n{total} rows, accuracy {accuracy}, {wrong} wrong; "
        "correct on the green diagonal", fontsize=10,
    )
    return fig


def reliability_diagram(table: pd.DataFrame, *, split: str | None = None, data: str | None = None) -> Figure:
    """Accuracy against confidence per bin, beside the diagonal of perfect calibration.

    table: `fnn.metrics.reliability_table` (bin, lower, upper, confidence, accuracy, count).
    Top: bars of each bin's accuracy, dots at its mean confidence; bars below the diagonal
    mean over-confidence. Bottom: how many samples fall in each bin (log scale).
    split, data: named in the title.
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
    ax.set_title(f"Reliability diagram{on(split, data)} (ECE = {calibration_error(table):.4f})")
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
    *,
    rows: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    split: str | None = None,
    data: str | None = None,
    title: str | None = None,
) -> Figure:
    """The first n images with their predicted (and true) labels; mistakes titled in red.

    X: (m, 784) in [0, 1] (any square image size works), y_pred: (m,) int, y_true: (m,) int
    or None for unlabelled images. Pass rows in the order to show (e.g. most confident errors).
    rows: (m,) int, each image's row number in its split, shown above it ("row 17").
    confidence: (m,) float, the predicted class's probability, shown beside it ("pred 9 (0.98)").
    split, data: named in the title; title: its opening (default "Predictions for n images").
    With no rows (say, a model that made no mistakes) the figure only says so.
    """
    X, y_pred = np.asarray(X), np.asarray(y_pred)
    if X.ndim != 2:
        raise ValueError(f"X must be an (m, 784) array of images in rows, got shape {X.shape}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0, got {n!r}")
    for name, values in (("y_pred", y_pred), ("y_true", y_true), ("rows", rows), ("confidence", confidence)):
        if values is not None and np.shape(values) != (X.shape[0],):
            raise ValueError(f"{name} must have shape ({X.shape[0]},) to match X, got {np.shape(values)}")
    side = square_side(X.shape[1], "X")
    names = [str(name) for name in class_names]
    n = min(n, X.shape[0])
    lines = 1 + (rows is not None) + (y_true is not None and bool(np.any(np.asarray(y_true)[:n] != y_pred[:n])))
    fig, axes = image_grid(n, cell=(1.5, 1.45 + 0.2 * lines))
    for i, ax in enumerate(axes):
        ax.imshow(X[i].reshape(side, side), cmap="gray", vmin=0, vmax=1)
        predicted = names[y_pred[i]] + (f" ({float(confidence[i]):.2f})" if confidence is not None else "")
        above = f"row {int(rows[i])}\n" if rows is not None else ""
        if y_true is None:
            ax.set_title(f"{above}pred {predicted}", fontsize=9)
        elif y_true[i] == y_pred[i]:
            ax.set_title(f"{above}{predicted}", fontsize=9)
        else:
            ax.set_title(f"{above}pred {predicted}\ntrue {names[y_true[i]]}", fontsize=9, color=WRONG)
            for spine in ax.spines.values():
                spine.set_color(WRONG)
                spine.set_linewidth(2)
    opening = (title or f"Predictions for {n} images") + on(split, data)
    legend = ", ".join(
        part for part, shown in (("row in the split", rows is not None), ("predicted class", True),
                                 ("(its probability)", confidence is not None), ("true class when wrong", y_true is not None))
        if shown
    ).replace(", (", " (")
    if n == 0:
        fig.suptitle("No images to show")
    elif y_true is None:
        fig.suptitle(f"{opening}\neach image: {legend}", fontsize=10)
    else:
        wrong = int(np.sum(np.asarray(y_true)[:n] != y_pred[:n]))
        count = "" if wrong == n and title else f" ({wrong} wrong, in red)"  # a title such as "mistakes" says it
        fig.suptitle(f"{opening}{count}\neach image: {legend}", fontsize=10)
    return fig


def first_layer_weights(params: MLP, n: int = 64, *, data: str | None = None) -> Figure:
    """What the first layer looks for: red +, blue −, each tile on its own symmetric scale.

    An MLP whose input is a square image (784 = 28x28): the columns W1[:, j] as 28x28 images,
    the n hidden units with the largest weight norm ||W1[:, j]||. A CNN: its first Conv2D's
    filters K[:, :, 0, j] (on the first input channel) as kh x kw images, largest norm first.
    Each tile's colours run from -max|w| (blue) to +max|w| (red) of that tile, the value
    printed under its number; the colour bar says so. data: what the network was trained on.
    """
    first = next(layer for layer in params.layers if tree_leaves(layer))
    if hasattr(first, "K"):  # a convolution's filters: (kh, kw, C_in, C_out)
        tiles = first.K[:, :, 0, :].reshape(-1, first.K.shape[3])
        shape, what, unit_name = first.K.shape[:2], f"First convolution's {first.K.shape[0]}×{first.K.shape[1]} filters", "filter"
    else:
        tiles = first.W
        side = square_side(tiles.shape[0], "W1")
        shape, what, unit_name = (side, side), "First-layer weights", "unit"
    n = min(n, tiles.shape[1])
    units = np.argsort(-np.linalg.norm(tiles, axis=0), kind="stable")[:n]
    fig, axes = image_grid(n, cell=(1.3, 1.6))
    for unit, ax in zip(units, axes):
        w = tiles[:, unit].reshape(shape)
        limit = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap=WEIGHTS, vmin=-limit, vmax=limit)
        ax.set_title(f"{unit_name} {unit}\n±{limit:.2g}", fontsize=8)
    if axes:
        bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), WEIGHTS), ax=axes, shrink=0.6, aspect=30,
                           label="weight, as a share of its tile's max |w| (printed under each tile)")
        bar.set_ticks([-1, -0.5, 0, 0.5, 1], labels=["−max", "−max/2", "0", "+max/2", "+max"])
    trained = f" of the network trained on {data}" if data else ""
    fig.suptitle(
        f"{what}{trained}: {n} of {tiles.shape[1]} {unit_name}s, largest norm first\n"
        "red +, blue −, each tile on its own symmetric scale ±max|w|", fontsize=10,
    )
    return fig
