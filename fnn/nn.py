"""The math of the network, top to bottom: the softmax head, the forward pass, loss, backprop.

Convention: samples are rows. A network is a stack of layers (`fnn.layers`) f_1 .. f_L; for a
batch X: (m, n_0)

    A_0 = X
    A_l, cache_l = f_l.forward(A_{l-1}, rng)        l = 1..L
    P   = softmax(A_L)                              (m, k): A_L are the logits, k classes
    J   = -(1/m) Σ_i log P[i, y_i] + (l2 / (2m)) Σ ||W||²   (every `decayed` parameter W: Dense's W, never b)

and backprop, with Y the one-hot labels:

    dA_L = (P - Y) / m
    grads_l, dA_{l-1} = f_l.backward(cache_l, dA_l)          l = L..1
    dW  += (l2/m) W                                          for every decayed parameter W

Two generalisations, both optional. Row weights w: (m,) >= 0 (scikit-learn's sample_weight)
replace the mean by a weighted mean and m by the weights' mass M = Σ_i w_i, so a row of weight
0 counts as if absent and w = 1 is the formula above:

    J    = (1/M) Σ_i w_i ℓ_i + (l2 / (2M)) Σ ||W||²       ℓ_i = -log P[i, y_i]
    dA_L = w_i (P_i - Y_i) / M  (row i)                    dW += (l2/M) W

And labels given as a 0/1 indicator matrix Y: (m, k) (multilabel: each row may have several
labels) swap the softmax head for k independent sigmoids, P = σ(A_L), whose loss is the summed
binary cross-entropy ℓ_i = -Σ_j [Y_ij log P_ij + (1 - Y_ij) log(1 - P_ij)], with the same
delta, dA_L = w_i (P_i - Y_i) / M. y's shape chooses the head: (m,) int labels, softmax;
(m, k) indicators, sigmoids.

Every function computes in the params' dtype (float32 by default); X is cast to it once.
`forward_pass`, `backward` and `backprop` skip input validation (the training loop validates the
data set once); every other public function validates its inputs.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from fnn import checks
from fnn.layers import decayed_names
from fnn.params import MLP, params_dtype
from fnn.tree import RavelSpec, ravel_spec, tree_leaves, tree_map, unravel

# ---------------------------------------------------------------- the head: softmax + cross-entropy


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise log softmax of Z: (m, k) -> (m, k), same dtype.

    log P = (Z - max) - log Σ exp(Z - max). Shifting each row by its max changes nothing
    mathematically and keeps exp() from overflowing: the largest exponent is exp(0) = 1.
    """
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax: (m, k) -> (m, k); each row is a probability vector."""
    return np.exp(log_softmax(Z))


def cross_entropy(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Mean cross-entropy -(1/m) Σ_i log softmax(logits)[i, y_i]. logits: (m, k), y: (m,) int;
    with row weights w: (m,), the weighted mean (1/M) Σ_i w_i ℓ_i, M = Σ_i w_i."""
    return cross_entropy_and_delta(logits, y, w)[0]


def cross_entropy_and_delta(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(J, dJ/dlogits) of the mean cross-entropy. logits: (m, k), y: (m,) int -> (float, (m, k)).

    Softmax and cross-entropy together have the simple derivative dJ/dZ = (P - Y) / m: the
    softmax Jacobian and the log's 1/P cancel. Subtracting 1 at [i, y_i] is P - Y without
    building the one-hot Y. w: (m,) row weights in the logits' dtype (see the module
    docstring): row i's delta is then w_i (P_i - Y_i) / M.
    """
    m = logits.shape[0]
    rows = np.arange(m)
    # with S = Z - max (per row) and s = Σ_j exp(S_j): log P = S - log s, P = exp(S) / s
    shifted = logits - logits.max(axis=1, keepdims=True)
    delta = np.exp(shifted)
    s = delta.sum(axis=1, keepdims=True)
    if w is None:  # the common case, with whole-batch sums: one pass fewer than the weighted form
        value = float(np.log(s).sum() - shifted[rows, y].sum()) / m  # -(1/m) Σ_i log P[i, y_i]
        delta *= 1 / (m * s)  # P / m, one pass: the (m, 1) factor is computed first
        delta[rows, y] -= logits.dtype.type(1 / m)  # (P - Y) / m
        return value, delta
    c = row_coefficients(w)  # w_i / M
    value = float(np.dot(c, np.log(s[:, 0]) - shifted[rows, y]))  # (1/M) Σ_i w_i ℓ_i
    delta *= c[:, None] / s  # w_i P_i / M
    delta[rows, y] -= c  # w_i (P_i - Y_i) / M
    return value, delta


def sigmoid(Z: np.ndarray) -> np.ndarray:
    """Element-wise σ(Z) = 1 / (1 + e^(-Z)), same shape and dtype: the multilabel head's P."""
    return np.exp(-np.logaddexp(0, -Z)).astype(Z.dtype, copy=False)  # e^(-log(1 + e^(-Z))): no overflow


def sigmoid_cross_entropy_and_delta(
    logits: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """(J, dJ/dlogits) of the multilabel head. logits, Y: (m, k), Y of 0/1 in the logits' dtype.

    ℓ_i = -Σ_j [Y_ij log σ(Z_ij) + (1 - Y_ij) log(1 - σ(Z_ij))] = Σ_j [log(1 + e^Z_ij) - Y_ij Z_ij]
    (the second form never takes the log of a rounded-off 0); J = (1/m) Σ_i ℓ_i, or the weighted
    mean with w. As with softmax, the sigmoid's derivative and the log's cancel: dJ/dZ = (P - Y) / m,
    row i scaled by w_i / M with weights.
    """
    c = row_coefficients(w) if w is not None else np.full(logits.shape[0], 1 / logits.shape[0], logits.dtype)
    return float(np.dot(c, _binary_losses(logits, Y))), (sigmoid(logits) - Y) * c[:, None]


def _binary_losses(logits: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """ℓ_i = Σ_j [log(1 + e^Z_ij) - Y_ij Z_ij] of each row: (m, k) -> (m,)."""
    return (np.logaddexp(0, logits) - Y * logits).sum(axis=1)


def row_coefficients(w: np.ndarray) -> np.ndarray:
    """w_i / M, M = Σ_i w_i (summed in float64), in w's dtype: each row's share of a weighted
    mean. All zero when M = 0: a batch of weight 0 adds nothing to the loss or the gradient."""
    mass = float(w.sum(dtype=np.float64))
    return w * w.dtype.type(1 / mass) if mass > 0 else np.zeros_like(w)


def mass(y: np.ndarray, w: np.ndarray | None) -> float:
    """M, what a batch's loss is averaged over: Σ_i w_i with weights, else the rows m (1 when
    the weights sum to 0, so the l2 term stays finite in a batch that adds nothing else)."""
    if w is None:
        return y.shape[0]
    return float(w.sum(dtype=np.float64)) or 1.0


def head_and_delta(logits: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(J without the l2 term, dJ/dlogits) of the head y's shape names: y (m,) int labels, the
    softmax cross-entropy; Y (m, k) 0/1 indicators, the multilabel sigmoid cross-entropy."""
    if y.ndim == 2:
        return sigmoid_cross_entropy_and_delta(logits, y, w)
    return cross_entropy_and_delta(logits, y, w)


def row_losses(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ: (m,) each row's loss, hit: (m,) bool whether the row is predicted right) for the head
    y's shape names: softmax, ℓ_i = -log P[i, y_i] and argmax = y_i; multilabel sigmoids, the
    summed binary cross-entropy and every label right (P_ij > 1/2 exactly where Y_ij = 1)."""
    if y.ndim == 2:
        return _binary_losses(logits, y), ((logits > 0) == (y > 0.5)).all(axis=1)
    rows = np.arange(logits.shape[0])
    return -log_softmax(logits)[rows, y], logits.argmax(axis=1) == y


# ---------------------------------------------------------------- input checks


def check_batch(params: MLP, X, y=None, *, finite: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a batch and return (X in the params' dtype, y as given).

    X must be a 2-D finite numeric array with at least one row, as wide as the first layer's
    `n_in` when it tells one; y, if given, a 1-D int array of the same length with labels >= 0
    (the upper bound k is checked against the logits, `check_labels`). finite=False leaves the
    finiteness check to the caller (`check_finite`), who makes it more cheaply downstream.
    """
    width = getattr(params.layers[0], "n_in", None) if params.layers else None
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X must be a numpy array of shape (m, {width or 'n_inputs'}), got {type(X).__name__}")
    if X.ndim != 2 or (width is not None and X.shape[1] != width):
        raise ValueError(f"X must have shape (m, {width or 'n_inputs'}) (samples in rows), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is an empty batch: it needs at least one row")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TypeError(f"X must hold numbers, got dtype {X.dtype}")
    X = X.astype(params_dtype(params), copy=False)
    if finite:
        check_finite(X)
    return X, None if y is None else check_labels_array(y, X.shape[0], X.dtype)


def check_labels_array(y, m: int, dtype) -> np.ndarray:
    """y as the heads take it: (m,) int labels >= 0 as given, or a multilabel indicator matrix
    (m, k) of 0/1 cast to `dtype` (the params')."""
    if isinstance(y, np.ndarray) and y.ndim == 2:
        if y.shape[0] != m:
            raise ValueError(f"y must have shape ({m},) (labels) or ({m}, k) (multilabel 0/1) to match X's rows, got {y.shape}")
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool) or not np.isin(y, (0, 1)).all():
            raise ValueError("a 2-D y is a multilabel indicator matrix: (m, k) of 0 and 1 only")
        return y.astype(dtype, copy=False)
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must be a numpy array of integer labels, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (m,):
        raise ValueError(f"y must have shape ({m},) to match X's rows, got {y.shape}")
    return y


def check_weights(w, m: int, dtype) -> np.ndarray | None:
    """Row weights w: (m,) finite numbers >= 0, not all 0, as `dtype`; None stays None (every
    row weighs 1)."""
    if w is None:
        return None
    w = np.asarray(w)
    if w.shape != (m,) or not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise ValueError(f"sample weights must be {m} numbers, one per row, got {w.dtype} of shape {w.shape}")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"sample weights must be finite and >= 0, got {w[i]} for row {i}")
    if not w.any():
        raise ValueError("sample weights are all 0: at least one row must weigh something")
    return w.astype(dtype, copy=False)


def check_finite(X: np.ndarray, first_row: int = 0) -> None:
    """Raise ValueError naming the first row of X (counted from `first_row`) holding NaN or inf."""
    # min and max propagate NaN and reach ±inf, so two allocation-free reductions decide
    # what np.isfinite(X).all() would, about 1.5x faster; the row is found only on failure.
    if not (np.isfinite(X.min()) and np.isfinite(X.max())):
        row = first_row + int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"X holds a non-finite value (NaN or inf) in row {row}")


def first_layer_screens_inputs(params: MLP) -> bool:
    """Whether the first layer's output reveals every non-finite input: it declares
    `screens_nonfinite` (Dense with finite W and b: Z = X W + b puts NaN or ±inf in *every* unit
    of a row whose X holds one, as ±inf · w is ±inf for w ≠ 0 and NaN for w = 0). Not true of
    the logits in general: ReLU maps -inf to 0 and tanh, sigmoid map ±inf to finite values."""
    return bool(params.layers) and getattr(params.layers[0], "screens_nonfinite", False)


def check_labels(y: np.ndarray, k: int) -> None:
    """Every label in [0, k), k the width of the logits the network computed; a multilabel
    Y: (m, k') must have k' = k columns."""
    if y.ndim == 2:
        if y.shape[1] != k:
            raise ValueError(f"a multilabel y needs one column per output: {k} for this network, got {y.shape[1]}")
        return
    bad = (y < 0) | (y >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must be in [0, {k}) for a network with {k} outputs, got y[{i}] = {y[i]}")


# ---------------------------------------------------------------- forward


def forward_pass(params: MLP, X: np.ndarray, rng: np.random.Generator | None = None) -> tuple[list, list]:
    """The one forward pass: ([A_0, A_1, ..., A_L], [cache_1, ..., cache_L]). No validation.

    X: (m, n_0) in the params' dtype; A_L: (m, k) the logits. rng: a Generator while training
    (Dropout draws its masks from it, layer by layer, so the same rng state gives the same
    masks), None otherwise.
    """
    outputs, caches = [X], []
    for layer in params.layers:
        A, cache = layer.forward(outputs[-1], rng)
        outputs.append(A)
        caches.append(cache)
    return outputs, caches


EVAL_BYTES = 1 << 20  # what one chunk of an evaluation may hold: every output and cache of its pass
EVAL_MIN_ROWS = 32  # but never fewer rows a chunk: a wide CNN's pass then holds more, as its training batches do


def eval_rows(params: MLP, X: np.ndarray, limit: int = 8192) -> int:
    """Rows per chunk of an evaluation pass over X: (n, n_0), so that one chunk's outputs and
    caches (`forward_pass` keeps them all), each array counted once, fit in EVAL_BYTES; at most
    `limit`, at least EVAL_MIN_ROWS (or `limit` if smaller). Measured on X's first row: 5.2 KB
    a row for 784-256-10 (200 rows, under twice a 128-row batch's activations: evaluation
    never dwarfs training), 440 KB for a 32-64 CNN (32 rows, 14 MB: a training batch of 128
    holds four times that)."""
    outputs, caches = forward_pass(params, X[:1])
    arrays = {id(leaf): leaf for leaf in tree_leaves((outputs, caches)) if isinstance(leaf, np.ndarray)}
    per_row = sum(leaf.nbytes for leaf in arrays.values())
    return max(min(limit, EVAL_MIN_ROWS), min(limit, EVAL_BYTES // max(per_row, 1)))


def forward(params: MLP, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Logits of a batch. X: (m, n_0) -> A_L: (m, k), in the params' dtype.

    Without rng (evaluation) the rows pass in chunks of `eval_rows`, so memory stays bounded
    for any m; with rng (training mode) in one pass, so the masks are those of `loss`.
    """
    X, _ = check_batch(params, X)
    if rng is not None:
        return forward_pass(params, X, checks.generator("rng", rng))[0][-1]
    rows = eval_rows(params, X)
    return np.concatenate([forward_pass(params, X[s : s + rows])[0][-1] for s in range(0, X.shape[0], rows)])


def predict_proba(params: MLP, X: np.ndarray) -> np.ndarray:
    """Class probabilities softmax(A_L). X: (m, n_0) -> P: (m, k), rows sum to 1."""
    return softmax(forward(params, X))


def predict(params: MLP, X: np.ndarray) -> np.ndarray:
    """Predicted labels argmax_j A_L[i, j]. X: (m, n_0) -> (m,) int64."""
    return forward(params, X).argmax(axis=1)


# ---------------------------------------------------------------- loss and backprop


def l2_penalty(params: MLP, l2: float, m: float) -> float:
    """(l2 / (2m)) Σ ||W||² over every decayed parameter W (Dense's W, never b); m the batch's
    rows, or its weights' mass M."""
    if l2 == 0.0:
        return 0.0
    weights = [getattr(layer, name) for layer in params.layers for name in decayed_names(type(layer))]
    return l2 / (2 * m) * sum(float(np.vdot(W, W)) for W in weights)


def loss(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, rng: np.random.Generator | None = None,
    w: np.ndarray | None = None,
) -> float:
    """J = mean cross-entropy + (l2/(2m)) Σ||W||². X: (m, n_0), y: (m,) int in [0, k) or a
    multilabel Y: (m, k) of 0/1; w: (m,) row weights or None (see the module docstring)."""
    X, y = check_batch(params, X, y)
    w = check_weights(w, X.shape[0], X.dtype)
    l2 = checks.non_negative_float("l2", l2)
    logits = forward_pass(params, X, checks.optional_generator("rng", rng))[0][-1]
    check_labels(y, logits.shape[1])
    return head_and_delta(logits, y, w)[0] + l2_penalty(params, l2, mass(y, w))


@functools.cache
def _takes_out(method) -> bool:
    """Whether a layer's backward rule takes `out` (a pure function of the function, memoised)."""
    return "out" in inspect.signature(method).parameters


def _layer_backward(layer, cache, dA: np.ndarray, out, first: bool):
    """(grads written into `out`, dA of the layer's input; None for the first parameter layer)."""
    rule = type(layer).backward_params if first and hasattr(layer, "backward_params") else type(layer).backward
    result = rule(layer, cache, dA, out=out) if _takes_out(rule) else rule(layer, cache, dA)
    g, dA = (result, None) if rule is not type(layer).backward else result
    if g is not out:  # a rule that does not write into `out`: its gradients are copied there
        for src, dst in zip(tree_leaves(g), tree_leaves(out), strict=True):
            np.copyto(dst, src)
    return dA


def backward(
    params: MLP, caches: list, dA: np.ndarray, l2: float, spec: RavelSpec, flat: np.ndarray, m: float | None = None
) -> MLP:
    """dJ/dparams from the caches of `forward_pass` and dA = dJ/dA_L: (m, k), written into
    `flat` (spec.size,) in `spec`'s order (`fnn.tree.ravel_spec(params)`); returns them as a
    record of the params' structure whose arrays are views of `flat`. No validation.

    Runs the layers' `backward` rules from last to first, each writing its gradients into its
    own views of `flat`. The first layer with parameters only computes its parameter gradients
    (`backward_params` when it has one): the gradient with respect to the input X is never
    needed, nor is any layer's before it (parameter-less, their own empty gradients).
    l2 adds (l2/m) W to the gradient of each decayed parameter W, m = dA's rows unless given
    (the weights' mass M of a weighted batch).
    """
    grads = unravel(spec, flat)
    owners = [i for i, layer in enumerate(params.layers) if tree_leaves(layer)]
    first = owners[0] if owners else len(params.layers)
    coef = dA.dtype.type(l2 / (dA.shape[0] if m is None else m))
    for i in range(len(params.layers) - 1, first - 1, -1):
        layer, g = params.layers[i], grads.layers[i]
        dA = _layer_backward(layer, caches[i], dA, g, i == first)
        if l2:
            for name in decayed_names(type(layer)):
                getattr(g, name)[...] += coef * getattr(layer, name)  # our buffer: ours to update
    return grads


def backprop(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, rng: np.random.Generator | None = None,
    *, w: np.ndarray | None = None, spec: RavelSpec | None = None, flat: np.ndarray | None = None,
) -> tuple[float, MLP]:
    """`value_and_grads` without input validation: for callers that validated the data once
    (the training loop). X: (m, n_0) in the params' dtype, y: (m,) int in [0, k) or (m, k) 0/1,
    w: (m,) row weights in the params' dtype or None.
    spec, flat: where the grads go (see `backward`); by default a new buffer."""
    if spec is None:
        spec = ravel_spec(params)
    if flat is None:
        flat = np.empty(spec.size, spec.dtype)
    return _head_and_backward(params, *forward_pass(params, X, rng), y, w, l2, spec, flat)


def _head_and_backward(params, outputs, caches, y, w, l2, spec, flat) -> tuple[float, MLP]:
    value, dA = head_and_delta(outputs[-1], y, w)
    M = mass(y, w)
    return value + l2_penalty(params, l2, M), backward(params, caches, dA, l2, spec, flat, M)


def value_and_grads(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, rng: np.random.Generator | None = None,
    w: np.ndarray | None = None,
) -> tuple[float, MLP]:
    """(J, dJ/dparams) from one forward pass. X: (m, n_0), y: (m,) int or (m, k) 0/1, w: (m,)
    row weights or None -> (float, MLP).

    The gradient has exactly the structure, shapes and dtypes of `params` (its arrays are views
    of one new buffer). rng: a Generator
    for training-mode layers (Dropout); the same rng state gives the same masks as `loss`.
    """
    X, y = check_batch(params, X, y)
    w = check_weights(w, X.shape[0], X.dtype)
    l2 = checks.non_negative_float("l2", l2)
    outputs, caches = forward_pass(params, X, checks.optional_generator("rng", rng))
    check_labels(y, outputs[-1].shape[1])
    spec = ravel_spec(params)
    return _head_and_backward(params, outputs, caches, y, w, l2, spec, np.empty(spec.size, spec.dtype))


def grads(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, rng: np.random.Generator | None = None,
    w: np.ndarray | None = None,
) -> MLP:
    """dJ/dparams by backprop. X: (m, n_0), y: (m,) int -> MLP of the params' shapes and dtypes."""
    return value_and_grads(params, X, y, l2, rng, w)[1]


def step(params: MLP, grads: MLP, lr: float) -> MLP:
    """One gradient-descent step, leaf by leaf: W := W - lr·dW, b := b - lr·db."""
    lr = float(lr)
    return tree_map(lambda p, g: p - lr * g, params, grads)
