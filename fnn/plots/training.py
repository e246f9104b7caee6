"""Figures of training: curves, per-layer health, optimizer comparison, the tuning heat map."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fnn.params import MLP
from fnn.plots.base import DEV, TRAIN, WRONG, X_LABELS, check_columns, has_values, layer_columns
from fnn.tree import tree_leaves


# ---------------------------------------------------------------- training curves


def training_metrics(history: pd.DataFrame) -> Figure:
    """Accuracy (left) and loss (right) against the step, train and dev curves.

    history: fit's table (step, train_acc, train_loss; dev_acc, dev_loss drawn when not all NaN).
    """
    check_columns(history, "history", ["step", "train_acc", "train_loss", "dev_acc", "dev_loss"])
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    for ax, metric, title in ((ax_acc, "acc", "Accuracy"), (ax_loss, "loss", "Loss")):
        for split, color in (("train", TRAIN), ("dev", DEV)):
            column = f"{split}_{metric}"
            if has_values(history[column]):
                ax.plot(history["step"], history[column], color=color, marker=".", markersize=4, label=split)
        ax.set_xlabel(X_LABELS["step"])
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


def layer_labels(params: MLP | None, n: int, prefix: str) -> dict[int, str]:
    """Names for history's per-layer columns `<prefix>_<i>`, i = 1..n.

    i counts the layers with parameters (1-based): grad_norm_<i> and update_ratio_<i> belong to
    the i-th of them ("Dense 2"), dead_frac_<i> to the activation right after it ("Relu after
    Dense 2"). Without params (or for a column the stack has no layer for): "layer <i>".
    """
    labels = {i: f"layer {i}" for i in range(1, n + 1)}
    if params is None:
        return labels
    layers = list(params.layers)
    with_params = [j for j, layer in enumerate(layers) if tree_leaves(layer)]
    for i, j in enumerate(with_params, start=1):
        owner = f"{type(layers[j]).__name__} {i}"
        if prefix != "dead_frac":
            labels[i] = owner
        elif j + 1 < len(layers):
            labels[i] = f"{type(layers[j + 1]).__name__} after {owner}"
    return labels


def training_health(history: pd.DataFrame, params: MLP | None = None) -> Figure:
    """Per-layer gradient norm, update ratio ||ΔW||/||W|| (log scales) and dead-unit fraction.

    history: fit's table with grad_norm_<i>, update_ratio_<i> and dead_frac_<i> columns.
    params: the run's network, to name each curve by its layer's type ("Dense 1", "Relu after
    Dense 1", see `layer_labels`); without it the curves are "layer <i>".
    The update-ratio panel marks 1e-3, a common rule of thumb for a healthy learning rate.
    """
    check_columns(history, "history", ["step"])
    panels = [
        ("grad_norm", "Gradient norm per layer", "||dJ/dθ_i||  (log scale)", True),
        ("update_ratio", "Update ratio per layer", "||ΔW_i|| / ||W_i||  (log scale)", True),
        ("dead_frac", "Dead units per ReLU-family layer", "fraction of units never active", False),
    ]
    if not layer_columns(history, "grad_norm") or not layer_columns(history, "update_ratio"):
        raise ValueError(f"history lacks grad_norm_<i>/update_ratio_<i> columns; it has {list(history.columns)}")
    fig = Figure(figsize=(14, 4.2), layout="constrained")
    for ax, (prefix, title, ylabel, log) in zip(fig.subplots(1, 3), panels):
        columns = layer_columns(history, prefix)
        labels = layer_labels(params, max((i for i, _ in columns), default=0), prefix)
        for i, column in columns:
            ax.plot(history["step"], history[column], color=f"C{i - 1}", label=labels[i])
        if prefix == "update_ratio":
            ax.axhline(1e-3, color="gray", linestyle=":", label="1e-3 rule of thumb")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        if columns:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no ReLU-family layers", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_xlabel(X_LABELS["step"])
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
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {list(X_LABELS)}, got {x!r}")
    if not histories:
        raise ValueError("histories is empty: pass {run name: history DataFrame}")
    for name, history in histories.items():
        check_columns(history, f"histories[{name!r}]", [x, "train_loss", "train_acc", "dev_acc"])
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for i, (name, history) in enumerate(histories.items()):
        ax_loss.plot(history[x], history["train_loss"], color=f"C{i}", label=name)
        if has_values(history["dev_acc"]):
            ax_acc.plot(history[x], history["dev_acc"], color=f"C{i}", label=name)
        else:
            ax_acc.plot(history[x], history["train_acc"], color=f"C{i}", linestyle="--", label=f"{name} (train)")
    ax_loss.set_yscale("log")
    ax_loss.set_title("Training loss")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_acc.set_title("Dev accuracy")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel(X_LABELS[x])
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Optimizer comparison")
    return fig


# ---------------------------------------------------------------- tuning


def tuning_heatmap(results: pd.DataFrame) -> Figure:
    """Dev accuracy over hidden width × l2, one annotated cell per pair, the best one boxed.

    results: one row per run with columns hidden, l2, dev_acc (and optionally lr). When a
    pair was tried with several learning rates the cell shows the best and names its lr.
    Runs with NaN dev_acc (diverged) are ignored; pairs with none left show "–".
    """
    check_columns(results, "results", ["hidden", "l2", "dev_acc"])
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
