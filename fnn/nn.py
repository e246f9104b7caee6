"""The math of the network, top to bottom: activations, forward pass, loss, backprop, a GD step.

Convention: samples are rows. For a batch X: (m, n_0) and layers l = 1..L,

    A_0 = X
    Z_l = A_{l-1} W_l + b_l            W_l: (n_{l-1}, n_l), b_l: (n_l,)
    A_l = relu(Z_l)                    for l < L
    P   = softmax(Z_L)                 (m, k), k = n_L classes
    J   = -(1/m) Σ_i log P[i, y_i] + (l2 / (2m)) Σ_l ||W_l||²

and backprop, with Y the one-hot labels:

    dZ_L = (P - Y) / m
    dW_l = A_{l-1}ᵀ dZ_l + (l2/m) W_l
    db_l = Σ_i dZ_l[i, :]              (a vector: one entry per unit, summed over the batch)
    dZ_{l-1} = (dZ_l W_lᵀ) ⊙ [Z_{l-1} > 0]

Every function computes in the params' dtype (float32 by default); X is cast to it once.
"""

from __future__ import annotations

import numpy as np

from fnn.params import MLP, Dense
from fnn.tree import tree_map


# ---------------------------------------------------------------- activations and their rules


def relu(Z: np.ndarray) -> np.ndarray:
    """relu(Z) = max(Z, 0), elementwise. Its derivative is the mask [Z > 0]."""
    return np.maximum(Z, 0)


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


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy -(1/m) Σ_i log softmax(logits)[i, y_i]. logits: (m, k), y: (m,) int."""
    m = logits.shape[0]
    return float(-log_softmax(logits)[np.arange(m), y].mean())


# ---------------------------------------------------------------- input checks


def _check_inputs(params: MLP, X, y=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a batch against the network and return X in the params' dtype.

    Raises TypeError/ValueError naming what was expected: X must be a 2-D finite float array
    with n_0 columns and at least one row; y (if given) a 1-D int array of the same length
    with every label in [0, k).
    """
    n_in = params.layers[0].W.shape[0]
    k = params.layers[-1].W.shape[1]
    dtype = params.layers[0].W.dtype
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X must be a numpy array of shape (m, {n_in}), got {type(X).__name__}")
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"X must have shape (m, {n_in}) (samples in rows), got {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("X is an empty batch: it needs at least one row")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TypeError(f"X must hold numbers, got dtype {X.dtype}")
    X = X.astype(dtype, copy=False)
    # min and max propagate NaN and reach ±inf, so two allocation-free reductions decide
    # what np.isfinite(X).all() would, about 1.5x faster; the row is found only on failure.
    if not (np.isfinite(X.min()) and np.isfinite(X.max())):
        row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"X holds a non-finite value (NaN or inf) in row {row}")
    if y is None:
        return X, None
    if not isinstance(y, np.ndarray) or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must be a numpy array of integer labels, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X's rows, got {y.shape}")
    bad = (y < 0) | (y >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must be in [0, {k}), got y[{i}] = {y[i]}")
    return X, y


def _check_l2(l2) -> float:
    if isinstance(l2, bool) or not isinstance(l2, (int, float, np.integer, np.floating)):
        raise TypeError(f"l2 must be a number >= 0, got {l2!r}")
    l2 = float(l2)
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2}")
    return l2


# ---------------------------------------------------------------- forward


def _activations(layers: tuple[Dense, ...], X: np.ndarray) -> list[np.ndarray]:
    """[A_0 = X, A_1, ..., A_{L-1}, Z_L]: the hidden activations backprop needs, then logits."""
    outputs = [X]
    for layer in layers[:-1]:
        Z = outputs[-1] @ layer.W
        Z += layer.b
        outputs.append(np.maximum(Z, 0, out=Z))  # relu in place: Z is ours
    Z = outputs[-1] @ layers[-1].W
    Z += layers[-1].b
    outputs.append(Z)
    return outputs


def forward(params: MLP, X: np.ndarray) -> np.ndarray:
    """Logits of a batch. X: (m, n_0) -> Z_L: (m, k), in the params' dtype."""
    X, _ = _check_inputs(params, X)
    return _activations(params.layers, X)[-1]


def predict_proba(params: MLP, X: np.ndarray) -> np.ndarray:
    """Class probabilities softmax(Z_L). X: (m, n_0) -> P: (m, k), rows sum to 1."""
    return softmax(forward(params, X))


def predict(params: MLP, X: np.ndarray) -> np.ndarray:
    """Predicted labels argmax_j Z_L[i, j]. X: (m, n_0) -> (m,) int64."""
    return forward(params, X).argmax(axis=1)


# ---------------------------------------------------------------- loss and backprop


def l2_penalty(params: MLP, l2: float, m: int) -> float:
    """(l2 / (2m)) Σ_l ||W_l||²: weights only, never biases; m is the batch's own row count."""
    if l2 == 0.0:
        return 0.0
    return l2 / (2 * m) * sum(float(np.vdot(layer.W, layer.W)) for layer in params.layers)


def loss(params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> float:
    """J = mean cross-entropy + (l2/(2m)) Σ||W||². X: (m, n_0), y: (m,) int in [0, k)."""
    X, y = _check_inputs(params, X, y)
    l2 = _check_l2(l2)
    return cross_entropy(_activations(params.layers, X)[-1], y) + l2_penalty(params, l2, X.shape[0])


def value_and_grads(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, *, check: bool = True
) -> tuple[float, MLP]:
    """(J, dJ/dparams) from one forward pass. X: (m, n_0), y: (m,) int -> (float, MLP).

    The gradient has exactly the structure, shapes and dtypes of `params`.
    check=False skips input validation: only for callers that validated the whole data set
    once already (the training loop), since checking every batch costs a pass over X.
    """
    if check:
        X, y = _check_inputs(params, X, y)
        l2 = _check_l2(l2)
    m = X.shape[0]
    outputs = _activations(params.layers, X)
    logp = log_softmax(outputs[-1])
    rows = np.arange(m)
    value = float(-logp[rows, y].mean()) + l2_penalty(params, l2, m)

    # Softmax and cross-entropy together have the simple derivative dJ/dZ_L = (P - Y) / m:
    # the softmax Jacobian and the log's 1/P cancel. Subtracting 1 at [i, y_i] is P - Y
    # without building the one-hot Y.
    dZ = np.exp(logp)
    dZ[rows, y] -= 1
    dZ /= m

    layer_grads = []
    for l in range(len(params.layers) - 1, -1, -1):
        W, A_prev = params.layers[l].W, outputs[l]
        dW = A_prev.T @ dZ
        if l2:
            dW += (l2 / m) * W
        layer_grads.append(Dense(W=dW, b=dZ.sum(axis=0)))
        if l > 0:  # dX of the input layer is never needed
            dZ = dZ @ W.T
            dZ *= A_prev > 0  # relu's derivative; A_prev > 0 exactly where Z_prev > 0
    return value, MLP(layers=tuple(reversed(layer_grads)))


def grads(params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> MLP:
    """dJ/dparams by backprop. X: (m, n_0), y: (m,) int -> MLP of the params' shapes and dtypes."""
    return value_and_grads(params, X, y, l2)[1]


def step(params: MLP, grads: MLP, lr: float) -> MLP:
    """One gradient-descent step, leaf by leaf: W := W - lr·dW, b := b - lr·db."""
    lr = float(lr)
    return tree_map(lambda p, g: p - lr * g, params, grads)
