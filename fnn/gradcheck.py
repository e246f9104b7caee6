"""Gradient checking: backprop's gradients against central differences, parameter by parameter.

For every entry θ of every leaf the numeric derivative is the central difference

    ∂f/∂θ ≈ (f(θ + ε) - f(θ - ε)) / (2ε)

whose error is O(ε²) from truncation plus O(δ/ε) from rounding f (δ ≈ 1e-16·|f| in float64),
so ε = 1e-6 gives about 1e-10 absolute accuracy. That needs float64: in float32 the rounding
term alone is ~1e-1, so every check here runs on float64 copies of the parameters and data.

Training-mode layers (Dropout) draw from an rng. A Generator's state advances with every draw,
so each evaluation, the analytic one and all 2·(number of parameters) numeric ones, gets a fresh
Generator in the same starting state (`replay`): every evaluation then sees the same masks and
the check compares derivatives of one function.

ReLU-family layers have a kink at 0: if one of their inputs lies within ~ε·|∂input/∂θ| of 0,
the two evaluations straddle the kink and the difference measures neither side's slope.
`kink_margin` reports how far a batch is from every kink; `check_random_network` draws batches
that stay clear.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

from fnn import checks
from fnn.conv import Conv2D, square_image
from fnn.layers import Dense
from fnn.nn import forward_pass, loss, value_and_grads
from fnn.params import MLP, init, layer_sizes, params_dtype
from fnn.tree import static_fields, tree_leaves, tree_map

# A batch is "clear of the kinks" when every input of a ReLU-family layer is farther than
# KINK_CLEARANCE·ε from 0: a step of ε in one parameter moves such an input by about ε·max|A|
# (activations are O(1) to O(10) here), far less than that.
KINK_CLEARANCE = 100


def replay(rng: np.random.Generator | None) -> Callable[[], np.random.Generator | None]:
    """A function returning, at each call, a new Generator in rng's state *now* (None for None).

    rng itself is never drawn from, so the caller's stream does not advance. Every Generator
    made this way yields the same numbers: layers that draw from it (Dropout's masks) behave
    identically in every evaluation.
    """
    if rng is None:
        return lambda: None
    rng = checks.generator("rng", rng)
    bit_generator_type, state = type(rng.bit_generator), rng.bit_generator.state

    def fresh() -> np.random.Generator:
        bit_generator = bit_generator_type()
        bit_generator.state = state
        return np.random.Generator(bit_generator)

    return fresh


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


def kink_margin(params: MLP, X: np.ndarray, rng: np.random.Generator | None = None) -> float:
    """min |A[i, j]| over the input A of every ReLU-family layer (those declaring `relu_family`).

    X: (m, n_0), cast to the params' dtype. rng: the Generator the check will use (Dropout
    before a ReLU changes its input); it is replayed, never advanced. The distance of the batch
    from the kinks, computed by `fnn.nn.forward_pass`; +inf for a network without ReLU-family
    layers (softmax regression, tanh or sigmoid networks have no kinks).
    """
    X = np.asarray(X, dtype=params_dtype(params))
    inputs = forward_pass(params, X, replay(rng)())[0]  # inputs[j] feeds params.layers[j]
    return min(
        (float(np.abs(A).min()) for A, layer in zip(inputs, params.layers) if getattr(layer, "relu_family", False)),
        default=np.inf,
    )


def parameter_names(params: MLP) -> list[str]:
    """A name per leaf of an MLP, in `tree_leaves` order: f"{field}{i}" with i counting, from 1,
    the layers that have parameters. A Dense stack gives ["W1", "b1", "W2", "b2", ...]; a field
    holding several arrays gives f"{field}{i}[{j}]", j = 0, 1, ...
    """
    layers = [layer for layer in params.layers if tree_leaves(layer)]
    names = []
    for i, layer in enumerate(layers, start=1):
        static = static_fields(layer)
        for field in (f.name for f in attrs.fields(type(layer)) if f.name not in static):
            count = len(tree_leaves(getattr(layer, field)))
            names += [f"{field}{i}"] if count == 1 else [f"{field}{i}[{j}]" for j in range(count)]
    return names


def check_grads(
    params: MLP,
    X: np.ndarray,
    y: np.ndarray,
    l2: float = 0.0,
    rng: np.random.Generator | None = None,
    eps: float = 1e-6,
) -> list[tuple[str, float]]:
    """[(name, relative error)] of backprop's gradient of `loss` against central differences.

    params: any MLP, of built-in or user-defined layers (compared on float64 copies);
    X: (m, n_0) (cast to float64); y: (m,) int in [0, k); l2 >= 0; rng: None, or a Generator
    for training-mode layers: it is replayed (see `replay`) so the analytic and every numeric
    evaluation use the same Dropout masks, and the caller's rng does not advance.
    Names as `parameter_names` (["W1", "b1", ...]). Errors near 1e-9 mean agreement; above ~1e-6
    means a wrong gradient, or a batch that straddles a ReLU kink (see `kink_margin`).
    Cost: 2·(number of parameters) loss evaluations.
    """
    params64 = tree_map(lambda leaf: np.asarray(leaf, dtype=np.float64), params)
    X64 = np.asarray(X, dtype=np.float64)
    fresh = replay(rng)
    analytic = value_and_grads(params64, X64, y, l2, fresh())[1]
    numeric = numeric_grads(lambda p: loss(p, X64, y, l2, fresh()), params64, eps)
    return list(zip(parameter_names(params), tree_leaves(relative_error(analytic, numeric))))


def check_random_network(
    rng: np.random.Generator,
    sizes=(20, 16, 10),
    batch: int = 8,
    l2: float = 0.1,
    eps: float = 1e-6,
    activation: str = "relu",
    dropout: float = 0.0,
    conv=(),
    kernel: int = 3,
) -> list[tuple[str, float]]:
    """Gradient check of a random float64 network: [("W1", err), ("b1", err), ...].

    rng: the only source of randomness. sizes, activation, dropout, conv, kernel: as for `init`
    (with conv, sizes[0] must be a square number of pixels: 100 for 10x10 images). batch: rows m.
    The network is `init`'s, with biases redrawn from N(0, 0.1²) (so that bias gradients and
    dead units are generic); X ~ N(0, 1) of shape (batch, n_0), y uniform in [0, n_L). With
    dropout > 0 the masks come from one Generator spawned from rng, fixed for the whole check.
    Batches within KINK_CLEARANCE·eps of a ReLU kink are redrawn (up to 100 times).
    """
    batch = checks.positive_int("batch", batch)
    eps = checks.positive_float("eps", eps)
    shape = dict(conv=conv, kernel=kernel, image_shape=square_image(sizes[0])) if conv else {}
    net = init(rng, sizes, activation=activation, dropout=dropout, dtype=np.float64, **shape)
    params = MLP(
        layers=tuple(
            attrs.evolve(layer, b=0.1 * rng.standard_normal(layer.b.shape)) if isinstance(layer, (Dense, Conv2D)) else layer
            for layer in net.layers
        )
    )
    masks = rng.spawn(1)[0] if dropout > 0 else None
    sizes = layer_sizes(params)
    for _ in range(100):
        X = rng.standard_normal((batch, sizes[0]))
        if kink_margin(params, X, masks) > KINK_CLEARANCE * eps:
            y = rng.integers(0, sizes[-1], size=batch)
            return check_grads(params, X, y, l2, masks, eps)
    raise ValueError(
        f"could not draw a batch of {batch} rows clear of ReLU kinks (margin {KINK_CLEARANCE * eps:g}) "
        f"for sizes {sizes} in 100 tries; use a smaller batch or narrower layers"
    )
