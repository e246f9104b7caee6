"""Figures of training: curves, per-layer health, optimizer comparison, the tuning heat map."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from fnn.params import MLP
from fnn.plots.base import DEV, TRAIN, WRONG, X_LABELS, check_columns, has_values, layer_columns, on, where
from fnn.tree import tree_leaves


# ---------------------------------------------------------------- training curves


def training_metrics(history: pd.DataFrame, *, data: str | None = None) -> Figure:
    """Accuracy (left) and loss (right) against the step (epochs on the top axis), train and dev.

    history: fit's table (step, train_acc, train_loss; dev_acc, dev_loss drawn when not all NaN).
    The parameters fnn keeps are those of the best dev accuracy: it is starred, and the title
    says its value, step and epoch before the last evaluation's. data: named in the title.
    """
    check_columns(history, "history", ["step", "train_acc", "train_loss", "dev_acc", "dev_loss"])
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_acc, ax_loss = fig.subplots(1, 2)
    per_epoch = _steps_per_epoch(history)
    for ax, metric, title in ((ax_acc, "acc", "Accuracy"), (ax_loss, "loss", "Loss")):
        for split, color in (("train", TRAIN), ("dev", DEV)):
            column = f"{split}_{metric}"
            if has_values(history[column]):
                ax.plot(history["step"], history[column], color=color, marker=".", markersize=4, label=split)
        ax.set_xlabel(X_LABELS["step"])
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        if per_epoch:
            ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch, lambda e: e * per_epoch)).set_xlabel(
                f"epoch ({per_epoch} steps)", fontsize=8)
    ax_acc.set_ylabel("accuracy")
    ax_loss.set_ylabel("cross-entropy loss (no L2 term)")
    last = history.iloc[-1]
    dev = has_values(history["dev_acc"])
    opening = f"Training{' on ' + data if data else ''}: {'train and dev splits' if dev else 'train split'}"
    if dev:
        # the parameters fnn keeps are those of the best dev accuracy: show where they came from
        best = history.loc[history["dev_acc"].idxmax()]
        ax_acc.plot(best["step"], best["dev_acc"], "*", color=DEV, markersize=14, label="best dev (kept)")
        ax_acc.legend()
        summary = (f"kept: best dev accuracy {best['dev_acc']:.4f} at step {int(best['step'])} (epoch {int(best['epoch'])}); "
                   f"last: dev {last['dev_acc']:.4f}, train {last['train_acc']:.4f} at step {int(last['step'])}")
    else:
        summary = f"after {int(last['step'])} steps: train accuracy {last['train_acc']:.4f}"
    fig.suptitle(f"{opening}\n{summary}", fontsize=11)
    return fig


def _steps_per_epoch(history: pd.DataFrame) -> int | None:
    """Updates per epoch (step / epoch at the first row past an epoch), None when no row tells."""
    if "epoch" not in history.columns:
        return None
    done = history[history["epoch"] > 0]
    if done.empty:
        return None
    first = done.iloc[0]
    ratio = first["step"] / first["epoch"]
    return int(ratio) if ratio >= 1 and float(ratio).is_integer() else None


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


def training_health(history: pd.DataFrame, params: MLP | None = None, *, data: str | None = None) -> Figure:
    """Per-layer gradient norm and update ratio ||Δθ||/||θ|| (log scales), on the training
    split, and the dead-unit fraction when the network has ReLU-family layers.

    history: fit's table with grad_norm_<i>, update_ratio_<i> (and dead_frac_<i>) columns.
    params: the run's network, to name each curve by its layer's type ("Dense 1", "Relu after
    Dense 1", see `layer_labels`); without it the curves are "layer <i>".
    The update ratio follows the learning rate (a cosine schedule takes it towards 0 at the
    end, as it should), so the learning rate is drawn beside it, dashed, on its own axis.
    A network without ReLU-family layers (tanh, sigmoid) gets no dead-unit panel.
    data: named in the title.
    """
    check_columns(history, "history", ["step"])
    if not layer_columns(history, "grad_norm") or not layer_columns(history, "update_ratio"):
        raise ValueError(f"history lacks grad_norm_<i>/update_ratio_<i> columns; it has {list(history.columns)}")
    panels = [
        ("grad_norm", "Gradient norm per layer (last batch)", "||dJ/dθ_i||  (log scale)", True),
        ("update_ratio", "Update ratio per layer (last update)", "||Δθ_i|| / ||θ_i||  (log scale)", True),
    ]
    if layer_columns(history, "dead_frac"):
        panels.append(("dead_frac", "Dead units per ReLU-family layer", "fraction of units never active", False))
    fig = Figure(figsize=(4.7 * len(panels), 4.2), layout="constrained")
    for ax, (prefix, title, ylabel, log) in zip(fig.subplots(1, len(panels)), panels):
        columns = layer_columns(history, prefix)
        labels = layer_labels(params, max((i for i, _ in columns), default=0), prefix)
        for i, column in columns:
            ax.plot(history["step"], history[column], color=f"C{i - 1}", label=labels[i])
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.02)
        handles, names = ax.get_legend_handles_labels()
        if prefix == "update_ratio" and "lr" in history.columns and has_values(history["lr"]):
            ax_lr = ax.twinx()
            (lr_line,) = ax_lr.plot(history["step"], history["lr"], color="gray", linestyle="--", label="learning rate")
            ax_lr.set_ylabel("learning rate (dashed)", color="gray")
            ax_lr.set_ylim(bottom=0)
            handles, names = handles + [lr_line], names + ["learning rate (right axis)"]
        ax.legend(handles, names, fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(X_LABELS["step"])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Training health on the {where('train', data)}")
    return fig


def optimizer_comparison(histories: Mapping[str, pd.DataFrame], x: str = "step", *, data: str | None = None) -> Figure:
    """Training loss (log scale) and dev accuracy of several runs on one figure.

    histories: {run name: fit's history}. x: "step", "epoch" or "seconds" — the horizontal axis
    (use "epoch" when the runs' batch sizes differ, "seconds" to compare wall-clock cost).
    A run without dev values shows its train accuracy instead, dashed and labelled so.
    data: named in the title.
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
    ax_loss.set_title("Training loss (train split)")
    ax_loss.set_ylabel("cross-entropy loss (log scale)")
    ax_acc.set_title("Dev accuracy (dev split)")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel(X_LABELS[x])
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(f"Optimizer comparison{' on ' + data if data else ''}")
    return fig


# ---------------------------------------------------------------- tuning


def tuning_heatmap(results: pd.DataFrame, *, data: str | None = None, min_span: float = 0.05) -> Figure:
    """Dev accuracy over hidden width × l2, one annotated cell per pair, the best one boxed.

    results: one row per point with columns hidden, l2, dev_acc (the mean over the point's
    seeds), and optionally lr, seeds (the seeds it trained with) and dev_acc_std (their spread),
    as `fnn.tune.search` returns them. With several seeds each cell shows mean ± std, and
    cells whose mean is within one combined std of the best are boxed dashed: the search
    cannot tell them from it. When a pair was tried with several learning rates the cell
    shows the best and names its lr. Runs with NaN dev_acc (diverged) are ignored; pairs
    with none left show "–".

    The colours span at least `min_span` of accuracy below the best (0.05: five points), so
    differences of a few dev images, which are noise, are not stretched over the whole scale.
    data: named in the title.
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
    seeds = [len(s) for s in results["seeds"]] if "seeds" in results.columns else [1]
    spread = "dev_acc_std" in results.columns and max(seeds) > 1
    grid, std = np.full((len(hiddens), len(l2s)), np.nan), np.zeros((len(hiddens), len(l2s)))
    for _, row in best.iterrows():
        cell = hiddens.index(row["hidden"]), l2s.index(row["l2"])
        grid[cell] = row["dev_acc"]
        std[cell] = row["dev_acc_std"] if spread and np.isfinite(row["dev_acc_std"]) else 0.0
    top = float(np.nanmax(grid))
    low = min(float(np.nanmin(grid)), top - min_span)
    fig = Figure(figsize=(max(5.5, 1.35 * len(l2s) + 2.8), max(3.8, (0.95 if spread else 0.7) * len(hiddens) + 2.0)),
                 layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=low, vmax=top)
    fig.colorbar(image, ax=ax, label=f"dev accuracy{' (mean over seeds)' if spread else ''}; spans ≥ {min_span:g}")
    r_best, c_best = np.unravel_index(np.nanargmax(grid), grid.shape)
    for _, row in best.iterrows():
        r, c = hiddens.index(row["hidden"]), l2s.index(row["l2"])
        text = f"{row['dev_acc']:.4f}" + (f"\n± {std[r, c]:.4f}" if spread else "") + (f"\nlr {row['lr']:g}" if several_lr else "")
        ax.text(c, r, text, ha="center", va="center", fontsize=9,
                color="black" if grid[r, c] > low + 0.5 * (top - low) else "white")
        tied = spread and (r, c) != (r_best, c_best) and top - grid[r, c] <= np.hypot(std[r, c], std[r_best, c_best])
        if tied:
            ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, fill=False, edgecolor=WRONG, linewidth=1.5, linestyle="--"))
    for r, c in zip(*np.nonzero(np.isnan(grid))):
        ax.text(c, r, "–", ha="center", va="center", color="gray")
    ax.add_patch(Rectangle((c_best - 0.5, r_best - 0.5), 1, 1, fill=False, edgecolor=WRONG, linewidth=2.5))
    ax.set_xticks(range(len(l2s)), [f"{l2:g}" for l2 in l2s])
    ax.set_yticks(range(len(hiddens)), [", ".join(map(str, h)) if isinstance(h, (tuple, list)) else str(h) for h in hiddens])
    ax.set_xlabel("l2 (weight decay)")
    ax.set_ylabel("hidden units")
    if spread:
        how = f"mean ± std over {min(seeds)} seeds" if min(seeds) == max(seeds) else f"mean ± std over {min(seeds)}–{max(seeds)} seeds"
        boxes = "best boxed; dashed: within one std of it"
    else:
        how, boxes = "one seed per cell, so no spread is measured", "best boxed"
    ax.set_title(f"Dev accuracy{on('dev', data)}" + (" (best over lr)" if several_lr else "") + f"\n{how}; {boxes}", fontsize=10)
    return fig
