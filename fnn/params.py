"""Parameter records: a network *is* its tree of weights.

`MLP(layers=(Dense(W1, b1), Dense(W2, b2), ...))`: layer l maps (m, n_l) -> (m, n_{l+1}) by
`Z = A W + b`, so `W: (n_l, n_{l+1})` and `b: (n_{l+1},)`. Gradients, optimizer updates and
optimizer state reuse these same records.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np


@attrs.frozen(eq=False)
class Dense:
    """One affine layer, `Z = A W + b`. W: (n_in, n_out), b: (n_out,), same float dtype."""

    W: np.ndarray
    b: np.ndarray


@attrs.frozen(eq=False)
class MLP:
    """A stack of Dense layers; ReLU between them, softmax after the last (see `fnn.nn`)."""

    layers: tuple[Dense, ...]


def layer_sizes(params: MLP) -> tuple[int, ...]:
    """(n_0, n_1, ..., n_L): input width, hidden widths, number of classes."""
    return (params.layers[0].W.shape[0],) + tuple(layer.W.shape[1] for layer in params.layers)


def init(rng: np.random.Generator, sizes: Sequence[int] = (784, 128, 10), dtype=np.float32) -> MLP:
    """He-initialised MLP: W_l ~ N(0, 2 / n_l) with shape (n_l, n_{l+1}), b_l = 0.

    He et al. (2015): with ReLU units a variance of 2/fan_in keeps the activations' scale
    constant from layer to layer. The seed notebook uses the same rule (`randn * sqrt(2/n)`).

    rng: the only source of randomness; the same seed gives the same bits.
    sizes: (n_0, ..., n_L), at least an input and an output width, each a positive int.
    dtype: float32 (default) or float64.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    sizes = tuple(sizes)
    if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be two or more positive ints (n_in, ..., n_classes), got {sizes}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    layers = tuple(
        Dense(
            W=(rng.standard_normal((n_in, n_out), dtype=dtype) * dtype.type(np.sqrt(2.0 / n_in))),
            b=np.zeros(n_out, dtype=dtype),
        )
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    )
    return MLP(layers=layers)
