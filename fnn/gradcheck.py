"""Gradient checking: backprop's gradients against central differences, parameter by parameter.

For every entry θ of every leaf the numeric derivative is the central difference

    ∂f/∂θ ≈ (f(θ + ε) - f(θ - ε)) / (2ε)

whose error is O(ε²) from truncation plus O(δ/ε) from rounding f (δ ≈ 1e-16·|f| in float64),
so ε = 1e-6 gives about 1e-10 absolute accuracy. That needs float64: in float32 the rounding
term alone is ~1e-1, so every check here runs on float64 copies of the parameters.

ReLU has a kink at 0: if a hidden pre-activation Z lies within ~ε·|∂Z/∂θ| of 0, the two
evaluations straddle the kink and the difference measures neither side's slope. `kink_margin`
reports how far a batch is from every kink; `check_grads` draws batches that stay clear.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fnn.nn import loss, value_and_grads
from fnn.params import MLP, Dense, init, layer_sizes
from fnn.tree import tree_leaves, tree_map

# A batch is "clear of the kinks" when every hidden |Z| exceeds this; a step of ε = 1e-6 moves
# Z by at most ε·max|A| (activations are O(1) to O(10) here), far less than the margin.
KINK_MARGIN = 1e-4


def numeric_grads(f: Callable[[object], float], params, eps: float = 1e-6):
    """Central-difference gradient of a scalar function of a parameter tree.

    f: params -> float (e.g. `lambda p: loss(p, X, y, l2)`), called 2·(number of entries) times.
    params: any tree of float arrays (an MLP, a tuple of arrays, ...); it is not modified.
    eps: the half-width ε of the difference, in parameter units.
    Returns a tree with params' structure and shapes, leaves float64: entry-wise
    (f(θ + ε e_i) - f(θ - ε e_i)) / (2ε). f always receives float64 copies of params.
    """
    eps = float(eps)
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    # Private float64 copies: the only arrays perturbed in place below.
    point = tree_map(lambda leaf: np.array(leaf, dtype=np.float64), params)

    def leaf_grad(theta: np.ndarray) -> np.ndarray:
        g = np.empty_like(theta)
        flat, out = theta.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            f_plus = float(f(point))
            flat[i] = saved - eps
            f_minus = float(f(point))
            flat[i] = saved
            out[i] = (f_plus - f_minus) / (2 * eps)
        return g

    return tree_map(leaf_grad, point)


def relative_error(a, b):
    """Per-leaf relative error ||a - b|| / max(||a|| + ||b||, tiny) of two trees of one structure.

    a, b: trees of arrays with matching shapes (any float dtypes; compared in float64).
    Returns a tree of Python floats in [0, 1], one per leaf: 0 for identical leaves (both zero
    included), 1 for leaves pointing opposite ways. A norm ratio over the whole array, not a max
    over entries, so entries that are ~0 in both (where ε-noise dominates) cannot inflate it.
    """
    tiny = np.finfo(np.float64).tiny

    def leaf_error(x, y) -> float:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"leaf shapes differ: {x.shape} vs {y.shape}")
        return float(np.linalg.norm(x - y) / max(np.linalg.norm(x) + np.linalg.norm(y), tiny))

    return tree_map(leaf_error, a, b)


def kink_margin(params: MLP, X: np.ndarray) -> float:
    """min |Z_l[i, j]| over all hidden pre-activations Z_l = A_{l-1} W_l + b_l, l < L.

    X: (m, n_0). The distance of the batch from relu's kinks; +inf for a network with no
    hidden layer (softmax regression has no kinks).
    """
    A, margin = X.astype(params.layers[0].W.dtype, copy=False), np.inf
    for layer in params.layers[:-1]:
        Z = A @ layer.W + layer.b
        margin = min(margin, float(np.abs(Z).min()))
        A = np.maximum(Z, 0)
    return margin


def parameter_names(params: MLP) -> list[str]:
    """["W1", "b1", "W2", "b2", ...]: the leaves of an MLP in `tree_leaves` order, 1-based."""
    return [f"{field}{l}" for l in range(1, len(params.layers) + 1) for field in ("W", "b")]


def gradient_errors(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, eps: float = 1e-6
) -> list[tuple[str, float]]:
    """[(name, relative error)] of backprop's gradient of `loss` against central differences.

    params: any MLP (compared in float64); X: (m, n_0); y: (m,) int in [0, k); l2 >= 0.
    Errors near 1e-9 mean agreement; above ~1e-6 means a wrong gradient, or a batch that
    straddles a relu kink (see `kink_margin`). Cost: 2·(number of parameters) loss evaluations.
    """
    params64 = tree_map(lambda leaf: leaf.astype(np.float64), params)
    analytic = value_and_grads(params64, X, y, l2)[1]
    numeric = numeric_grads(lambda p: loss(p, X, y, l2), params64, eps)
    errors = tree_leaves(relative_error(analytic, numeric))
    return list(zip(parameter_names(params), errors))


def check_grads(
    rng: np.random.Generator,
    sizes=(20, 16, 10),
    batch: int = 8,
    l2: float = 0.1,
    eps: float = 1e-6,
) -> list[tuple[str, float]]:
    """Gradient check of a random float64 network: [("W1", err), ("b1", err), ...].

    rng: the only source of randomness. sizes: (n_0, ..., n_L) as for `init`. batch: rows m.
    The network is He-initialised with biases drawn from N(0, 0.1²) (so that bias gradients
    and dead units are generic); X ~ N(0, 1) of shape (batch, n_0), y uniform in [0, n_L).
    Batches within KINK_MARGIN of a relu kink are redrawn (up to 100 times).
    """
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    net = init(rng, sizes, dtype=np.float64)
    params = MLP(
        layers=tuple(
            Dense(W=layer.W, b=0.1 * rng.standard_normal(layer.b.shape)) for layer in net.layers
        )
    )
    sizes = layer_sizes(net)
    n_in, k = sizes[0], sizes[-1]
    for _ in range(100):
        X = rng.standard_normal((batch, n_in))
        if kink_margin(params, X) > KINK_MARGIN:
            y = rng.integers(0, k, size=batch)
            return gradient_errors(params, X, y, l2, eps)
    raise ValueError(
        f"could not draw a batch of {batch} rows clear of relu kinks (margin {KINK_MARGIN}) "
        f"for sizes {sizes} in 100 tries; use a smaller batch or narrower layers"
    )
