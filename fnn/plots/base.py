"""What the figures share: colours, axis labels, table checks and an image grid."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

X_LABELS = {"step": "iteration (step)", "epoch": "epoch", "seconds": "wall-clock seconds"}
TRAIN, DEV = "C0", "C1"
WRONG = "#d62728"


# ---------------------------------------------------------------- titles


def where(split: str | None = None, data: str | None = None) -> str:
    """What a figure's rows are, for its title: "test split of sample", "test split", "sample"
    or "" (neither named). split: "train", "dev", "test", ...; data: the data set's name."""
    if split and data:
        return f"{split} split of {data}"
    return f"{split} split" if split else (data or "")


def on(split: str | None = None, data: str | None = None) -> str:
    """" on the test split of sample" (with its leading space), or "" when neither is named."""
    text = where(split, data)
    return f" on the {text}" if split else (f" on {text}" if text else "")


# ---------------------------------------------------------------- input checks


def check_columns(table: pd.DataFrame, name: str, needed: Sequence[str]) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")
    if table.empty:
        raise ValueError(f"{name} has no rows to plot")


def layer_columns(history: pd.DataFrame, prefix: str) -> list[tuple[int, str]]:
    """[(l, column)] for the columns named `<prefix>_<l>`, by layer number."""
    pattern = re.compile(rf"{prefix}_(\d+)")
    found = [(int(m.group(1)), c) for c in history.columns if (m := pattern.fullmatch(str(c)))]
    return sorted(found)


def has_values(series: pd.Series) -> bool:
    return bool(np.isfinite(series.to_numpy(dtype=np.float64)).any())


def square_side(n_features: int, what: str) -> int:
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(f"{what} has {n_features} values per image, which is not a square image (784 = 28x28)")
    return side


def image_grid(n: int, cell: tuple[float, float], max_cols: int = 8) -> tuple[Figure, list]:
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
