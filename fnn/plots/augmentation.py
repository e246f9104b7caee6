"""The figure of data augmentation: training digits above what the network sees of them."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from fnn.augment import Augmentation, describe, distort
from fnn.plots.base import square_side


def augmented_samples(rng: np.random.Generator, X: np.ndarray, augmentation: Augmentation, n: int = 8,
                      versions: int = 3) -> Figure:
    """What the network sees: n evenly spaced images of X in the top row (a split may be sorted
    by class), and under each `versions` independent draws of `fnn.augment.distort(rng, .,
    augmentation)`.

    X: (m, H·W) rows of square images in [0, 1] (training digits); rng: spent on the draws.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be an (m, 784) array of images in rows, got shape {X.shape}")
    side = square_side(X.shape[1], "X")
    n = min(n, X.shape[0])
    if n == 0:
        raise ValueError("X has no rows to show")
    shown = X[np.linspace(0, len(X) - 1, n).round().astype(np.int64)].astype(np.float32)
    rows = [shown] + [distort(rng, shown, augmentation) for _ in range(versions)]
    fig = Figure(figsize=(1.2 * n + 1.2, 1.25 * len(rows) + 0.5), layout="constrained")
    axes = np.asarray(fig.subplots(len(rows), n, squeeze=False))
    for r, images in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(images[c].reshape(side, side), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel("original" if r == 0 else f"draw {r}", fontsize=9)
    fig.suptitle(f"Training digits (top) and what the network sees: --augment {describe(augmentation)}")
    return fig
