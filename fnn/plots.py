"""Figures of a run: curves, confusion matrix, digits, weights, health, tuning, calibration.

Every function builds and returns a `matplotlib.figure.Figure` directly — no pyplot, so no
global figure registry, no backend to select and nothing to close — and never shows it.
Writing it is the caller's: `save_figure(fig, path)` renders it atomically (see `fnn.io`).

History tables are those of `fnn.train.fit`: columns step, epoch, lr, seconds, train_loss,
train_acc, dev_loss, dev_acc (NaN without a dev set), then per layer l = 1..L grad_norm_<l>,
update_ratio_<l>, and for hidden layers dead_frac_<l>.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fnn.files import atomic_path
from fnn.metrics import calibration_error, check_confusion_matrix
from fnn.params import MLP

_X_LABELS = {"step": "iteration (step)", "epoch": "epoch", "seconds": "wall-clock seconds"}
TRAIN, DEV = "C0", "C1"
WRONG = "#d62728"


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render `fig` to `path` atomically; the format follows the suffix (PNG when there is none).

    Returns the path written. The figure is left as it was (nothing is closed or shown).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


# ---------------------------------------------------------------- input checks


def _check_columns(table: pd.DataFrame, name: str, needed: Sequence[str]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError(f"{name} has no rows to plot")


def _layer_columns(history: pd.DataFrame, prefix: str) -> list[tuple[int, str]]:
    """[(l, column)] for the columns named `<prefix>_<l>`, by layer number."""
    pattern = re.compile(rf"{prefix}_(\d+)")
    found = [(int(m.group(1)), c) for c in history.columns if (m := pattern.fullmatch(str(c)))]
    return sorted(found)


def _has_values(series: pd.Series) -> bool:
    return bool(np.isfinite(series.to_numpy(dtype=np.float64)).any())


def _square_side(n_features: int, what: str) -> int:
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"{what} has {n_features} values per image, which is not a square image (784 = 28x28)")
    return side


def _image_grid(n: int, cell: tuple[float, float], max_cols: int = 8) -> tuple[Figure, list]:
    """A figure of n image axes in a near-square grid, each cell (width, height) inches.

    Ticks are off; unused cells are hidden (all of the single cell when n = 0).
    """
    cols = max(1, min(max_cols, math.ceil(math.sqrt(n))))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(cell[0] * cols, cell[1] * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


# ---------------------------------------------------------------- training curves


def training_metrics(history: pd.DataFrame) -> Figure:
    """Accuracy (left) and loss (right) against the step, train and dev curves.

    history: fit's table (step, train_acc, train_loss; dev_acc, dev_loss drawn when not all NaN).
    """
    _check_columns(history, "history", ["step", "train_acc", "train_loss", "dev_acc", "dev_loss"])
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    for ax, metric, title in ((ax_acc, "acc", "Accuracy"), (ax_loss, "loss", "Loss")):
        for split, color in (("train", TRAIN), ("dev", DEV)):
            column = f"{split}_{metric}"
            if _has_values(history[column]):
                ax.plot(history["step"], history[column], color=color, marker=".", markersize=4, label=split)
        ax.set_xlabel(_X_LABELS["step"])
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_acc.set_ylabel("accuracy")
    ax_loss.set_ylabel("cross-entropy loss (no L2 term)")
    last = history.iloc[-1]
    summary = f"after {int(last['step'])} steps: train accuracy {last['train_acc']:.4f}"
    if np.isfinite(last["dev_acc"]):
        summary += f", dev accuracy {last['dev_acc']:.4f}"
        # the parameters fnn keeps are those of the best dev accuracy: show where they came from
        best = history.loc[history["dev_acc"].idxmax()]
        ax_acc.plot(best["step"], best["dev_acc"], "*", color=DEV, markersize=14, label="best dev")
        ax_acc.legend()
        summary += f"; best dev accuracy {best['dev_acc']:.4f} at step {int(best['step'])}"
    fig.suptitle(summary)
    return fig


def training_health(history: pd.DataFrame) -> Figure:
    """Per-layer gradient norm, update ratio ||ΔW||/||W|| (log scales) and dead-ReLU fraction.

    history: fit's table with grad_norm_<l>, update_ratio_<l> and dead_frac_<l> columns.
    The update-ratio panel marks 1e-3, a common rule of thumb for a healthy learning rate.
    """
    _check_columns(history, "history", ["step"])
    panels = [
        ("grad_norm", "Gradient norm per layer", "||dJ/dθ_l||  (log scale)", True),
        ("update_ratio", "Update ratio per layer", "||ΔW_l|| / ||W_l||  (log scale)", True),
        ("dead_frac", "Dead ReLU units per hidden layer", "fraction of units never active", False),
    ]
    if not _layer_columns(history, "grad_norm") or not _layer_columns(history, "update_ratio"):
        raise ValueError(f"history lacks grad_norm_<l>/update_ratio_<l> columns; it has {list(history.columns)}")
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    for ax, (prefix, title, ylabel, log) in zip(fig.subplots(1, 3), panels):
        columns = _layer_columns(history, prefix)
        for l, column in columns:
            ax.plot(history["step"], history[column], color=f"C{l - 1}", label=f"layer {l}")
        if prefix == "update_ratio":
            ax.axhline(1e-3, color="gray", linestyle=":", label="1e-3 rule of thumb")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        if columns:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no hidden layers", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(_X_LABELS["step"])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Training health")
    return fig


def optimizer_comparison(histories: Mapping[str, pd.DataFrame], x: str = "step") -> Figure:
    """Training loss (log scale) and dev accuracy of several runs on one figure.

    histories: {run name: fit's history}. x: "step", "epoch" or "seconds" — the horizontal axis
    (use "epoch" when the runs' batch sizes differ, "seconds" to compare wall-clock cost).
    A run without dev values shows its train accuracy instead, dashed and labelled so.
    """
    if x not in _X_LABELS:
        raise ValueError(f"x must be one of {list(_X_LABELS)}, got {x!r}")
    if not histories:
        raise ValueError("histories is empty: pass {run name: history DataFrame}")
    for name, history in histories.items():
        _check_columns(history, f"histories[{name!r}]", [x, "train_loss", "train_acc", "dev_acc"])
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (name, history) in enumerate(histories.items()):
        ax_loss.plot(history[x], history["train_loss"], color=f"C{i}", label=name)
        if _has_values(history["dev_acc"]):
            ax_acc.plot(history[x], history["dev_acc"], color=f"C{i}", label=name)
        else:
            ax_acc.plot(history[x], history["train_acc"], color=f"C{i}", linestyle="--", label=f"{name} (train)")
    ax_loss.set_yscale("log")
    ax_loss.set_title("Training loss")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_acc.set_title("Dev accuracy")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel(_X_LABELS[x])
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Optimizer comparison")
    return fig


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
    _check_columns(table, "table", ["lower", "upper", "confidence", "accuracy", "count"])
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
    side = _square_side(X.shape[1], "X")
    names = [str(name) for name in class_names]
    n = min(n, X.shape[0])
    fig, axes = _image_grid(n, cell=(1.5, 1.75))
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
    """What the first layer looks for: columns W1[:, j] as 28x28 images, red +, blue −.

    params: an MLP whose input is a square image (784 = 28x28). Shows the n hidden units with
    the largest weight norm ||W1[:, j]||, each on its own symmetric colour scale.
    """
    W = params.layers[0].W
    side = _square_side(W.shape[0], "W1")
    n = min(n, W.shape[1])
    units = np.argsort(-np.linalg.norm(W, axis=0), kind="stable")[:n]
    fig, axes = _image_grid(n, cell=(1.3, 1.45))
    for unit, ax in zip(units, axes):
        w = W[:, unit].reshape(side, side)
        limit = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"unit {unit}", fontsize=8)
    fig.suptitle(f"First-layer weights: {n} of {W.shape[1]} units, largest norm first")
    return fig


# ---------------------------------------------------------------- tuning


def tuning_heatmap(results: pd.DataFrame) -> Figure:
    """Dev accuracy over hidden width × l2, one annotated cell per pair, the best one boxed.

    results: one row per run with columns hidden, l2, dev_acc (and optionally lr). When a
    pair was tried with several learning rates the cell shows the best and names its lr.
    Runs with NaN dev_acc (diverged) are ignored; pairs with none left show "–".
    """
    _check_columns(results, "results", ["hidden", "l2", "dev_acc"])
    results = results.reset_index(drop=True)
    runs = results[np.isfinite(results["dev_acc"].to_numpy(dtype=np.float64))]
    if runs.empty:
        raise ValueError("results has no finite dev_acc: every run failed, nothing to plot")
    best = runs.loc[runs.groupby(["hidden", "l2"], sort=False)["dev_acc"].idxmax()]
    hiddens = list(dict.fromkeys(results["hidden"]))
    if all(isinstance(h, (int, float, np.number)) for h in hiddens):
        hiddens.sort()
    l2s = sorted(results["l2"].unique())
    several_lr = "lr" in results.columns and results["lr"].nunique() > 1
    grid = np.full((len(hiddens), len(l2s)), np.nan)
    fig = Figure(figsize=(max(5.5, 1.25 * len(l2s) + 2.5), max(3.5, 0.7 * len(hiddens) + 1.8)), layout="constrained")
    ax = fig.subplots()
    for _, row in best.iterrows():
        grid[hiddens.index(row["hidden"]), l2s.index(row["l2"])] = row["dev_acc"]
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label="dev accuracy")
    middle = np.nanmin(grid) + 0.5 * (np.nanmax(grid) - np.nanmin(grid))
    for _, row in best.iterrows():
        r, c = hiddens.index(row["hidden"]), l2s.index(row["l2"])
        text = f"{row['dev_acc']:.4f}" + (f"\nlr {row['lr']:g}" if several_lr else "")
        ax.text(c, r, text, ha="center", va="center", fontsize=9, color="black" if grid[r, c] > middle else "white")
    for r, c in zip(*np.nonzero(np.isnan(grid))):
        ax.text(c, r, "–", ha="center", va="center", color="gray")
    r, c = np.unravel_index(np.nanargmax(grid), grid.shape)
    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor=WRONG, linewidth=2.5))
    ax.set_xticks(range(len(l2s)), [f"{l2:g}" for l2 in l2s])
    ax.set_yticks(range(len(hiddens)), [", ".join(map(str, h)) if isinstance(h, (tuple, list)) else str(h) for h in hiddens])
    ax.set_xlabel("l2 (weight decay)")
    ax.set_ylabel("hidden units")
    ax.set_title("Dev accuracy" + (" (best over lr)" if several_lr else "") + "; best boxed")
    return fig
