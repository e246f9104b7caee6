"""Parameter records: a network *is* its tree of layers.

`MLP(layers=(Dense(W1, b1), Relu(), Dense(W2, b2), ...))`: the layers run in order, each a
record from `fnn.layers` (or the user's own) carrying its forward and backward rule. Gradients,
optimizer updates and optimizer state reuse these same records.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from fnn import checks
from fnn.layers import ACTIVATIONS, Dense, Dropout
from fnn.tree import tree_leaves


@attrs.frozen(eq=False)
class MLP:
    """A stack of layers, applied in order; softmax + cross-entropy is the head (see `fnn.nn`)."""

    layers: tuple = attrs.field(converter=tuple)


def layer_sizes(params: MLP) -> tuple[int, ...]:
    """(n_0, n_1, ..., n_L): the input width, then the output width of each Dense layer.

    For the stacks `init` builds this is (inputs, hidden widths..., classes).
    """
    dense = [layer for layer in params.layers if isinstance(layer, Dense)]
    if not dense:
        raise ValueError("the network has no Dense layer, so it has no layer sizes")
    return (int(dense[0].W.shape[0]),) + tuple(int(layer.W.shape[1]) for layer in dense)


def params_dtype(params) -> np.dtype:
    """The float dtype of the parameters (that of the first leaf; float32 if there are none)."""
    leaves = tree_leaves(params)
    return leaves[0].dtype if leaves else np.dtype(np.float32)


def init(
    rng: np.random.Generator,
    sizes: Sequence[int] = (784, 128, 10),
    activation: str = "relu",
    dropout: float = 0.0,
    dtype=np.float32,
) -> MLP:
    """A network of widths `sizes`: Dense, activation, (Dropout) for each hidden layer, then a
    final Dense whose outputs are the logits. `sizes=(784, 10)` is softmax regression.

    Weights W_l: (n_{l-1}, n_l) ~ N(0, σ²), biases b_l = 0, where
      relu, leaky_relu: σ² = 2 / n_{l-1} (He et al. 2015): half the units are off, so twice
          the variance keeps the activations' scale constant from layer to layer; the seed
          notebook uses the same rule (`randn * sqrt(2/n)`).
      tanh, sigmoid: σ² = 2 / (n_{l-1} + n_l) (Glorot & Bengio 2010): these units are near
          linear around 0, so the variance that preserves scale both forwards and backwards is
          the harmonic compromise between fan-in and fan-out.

    rng: the only source of randomness; the same seed gives the same bits.
    sizes: (n_0, ..., n_L), at least an input and an output width, each a positive int.
    activation: "relu", "leaky_relu", "tanh" or "sigmoid".
    dropout: rate of a Dropout layer after each hidden activation; 0 for none.
    dtype: float32 (default) or float64.
    """
    checks.generator("rng", rng)
    sizes = tuple(sizes)
    if len(sizes) < 2 or not all(checks.is_int(n) and n >= 1 for n in sizes):
        raise ValueError(f"sizes must be two or more positive ints (n_in, ..., n_classes), got {sizes}")
    checks.one_of("activation", activation, tuple(ACTIVATIONS))
    dropout = checks.fraction("dropout", dropout)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    act = ACTIVATIONS[activation]
    he = getattr(act, "relu_family", False)

    def dense(n_in: int, n_out: int) -> Dense:
        scale = np.sqrt((2.0 / n_in) if he else (2.0 / (n_in + n_out)))
        W = rng.standard_normal((n_in, n_out), dtype=dtype) * dtype.type(scale)
        return Dense(W=W, b=np.zeros(n_out, dtype=dtype))

    hidden = [
        (dense(n_in, n_out), act()) + ((Dropout(dropout),) if dropout else ())
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1])
    ]
    return MLP(layers=tuple(layer for block in hidden for layer in block) + (dense(sizes[-2], sizes[-1]),))
