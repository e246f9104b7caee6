"""Layers: frozen records that carry their own rule, each op written beside its derivative.

A layer is a frozen attrs record with two pure methods:

    forward(A, rng)           -> (Z, cache)  A: (m, n_in) -> Z: (m, n_out); rng: a Generator
                                             while training, None otherwise (evaluation)
    backward(cache, dZ, out)  -> (grads, dA) dZ = dJ/dZ: (m, n_out) -> dA = dJ/dA: (m, n_in);
                                             grads: a record of the layer's own type holding
                                             dJ/dparam for each parameter (the layer itself
                                             when it has none)

`out`, when not None, is a record of the layer's type whose arrays are where the gradients go
(views of the network's one gradient buffer): the rule writes them there (`np.matmul(...,
out=out.W)`) and returns `out`. A layer whose `backward` takes no `out` still works: the
network copies its gradients into place.

Array fields are the layer's parameters: `tree_map`, optimizers and model files see them.
Fields made with `fnn.tree.static(...)` are hyper-parameters (LeakyRelu's alpha, Dropout's rate):
they ride along in params, grads and optimizer state but are never leaves. A parameter made with
`decayed()` is one the loss's L2 term penalises (Dense's W, never b).

What a layer declares, as class attributes (the network reads these, never the layer's type):
    uses_rng = False            its forward never draws random numbers, so a training step
                                needs no Generator for it (undeclared: True, the safe guess)
    relu_family = True          its output is > 0 exactly where its input is, with a kink at 0
                                (ReLU, leaky ReLU): training history reports the fraction of
                                units never active, gradcheck keeps inputs clear of the kink,
                                and `init` draws He weights for it
    screens_nonfinite = True    a non-finite input puts NaN or inf in every output of its row
                                (Dense), so its output screens X's finiteness in one sum
A first layer may also tell the input width it takes as `n_in` (Dense: W's rows), so that a
batch of the wrong width is refused with the width it needs.

A layer may also define `backward_params(cache, dZ, out) -> grads`, the parameter half of
`backward` alone. The network's backward pass calls it for the first layer that has
parameters, whose dA would be the gradient with respect to the input X, which nothing needs
(for Dense it saves a matrix product as large as the forward one).
"""

from __future__ import annotations

import functools
from typing import ClassVar

import attrs
import numpy as np

from fnn.tree import static


def decayed():
    """An attrs field for a parameter that L2 regularisation penalises (Dense's W)."""
    return attrs.field(metadata={"decay": True})


@functools.cache
def decayed_names(cls: type) -> tuple[str, ...]:
    """The names of a layer class's `decayed()` parameters."""
    return tuple(f.name for f in attrs.fields(cls) if f.metadata.get("decay", False)) if attrs.has(cls) else ()


def describe_array(a) -> str:
    """A short text for a parameter-like leaf: its dtype (an array's values are never printed)."""
    return str(a.dtype) if hasattr(a, "dtype") else type(a).__name__


def _probability(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a number in [0, 1), got {value!r}")


def _finite_number(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a finite number, got {value!r}")


def _leaky_slope(instance, attribute, value):
    _finite_number(instance, attribute, value)
    if not 0 <= value < 1:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} is the slope for negative inputs, a number in [0, 1) "
            f"(e.g. 0.01), got {value!r}"
        )


@attrs.frozen(eq=False, repr=False)
class Dense:
    """Affine map Z = A W + b. W: (n_in, n_out), b: (n_out,), one float dtype."""

    W: np.ndarray = decayed()
    b: np.ndarray = attrs.field()

    uses_rng: ClassVar[bool] = False
    screens_nonfinite: ClassVar[bool] = True  # ±inf·w and NaN reach every unit: Z = A W + b

    def __repr__(self) -> str:  # Dense(784→128, float32): shapes and dtype, never the values
        shape = np.shape(self.W)
        widths = f"{shape[0]}→{shape[1]}" if len(shape) == 2 else f"W{shape}"
        return f"Dense({widths}, {describe_array(self.W)})"

    @property
    def n_in(self) -> int:
        """The input columns it takes (what `fnn.nn.check_batch` asks of X)."""
        return self.W.shape[0]

    def forward(self, A, rng):
        if A.shape[1] != self.W.shape[0]:
            raise ValueError(f"Dense layer takes {self.W.shape[0]} input columns (W is {self.W.shape}), got A of shape {A.shape}")
        Z = A @ self.W
        Z += self.b
        return Z, A

    def backward_params(self, A, dZ, out=None):
        # dW = Aᵀ dZ: (n_in, n_out); db = Σ_i dZ[i, :]: one entry per unit, summed over the batch
        if out is None:
            return Dense(W=A.T @ dZ, b=dZ.sum(axis=0))
        np.matmul(A.T, dZ, out=out.W)
        np.sum(dZ, axis=0, out=out.b)
        return out

    def backward(self, A, dZ, out=None):
        return self.backward_params(A, dZ, out), dZ @ self.W.T  # dA = dZ Wᵀ


@attrs.frozen
class Relu:
    """Z = max(A, 0); dA = dZ ⊙ [Z > 0]."""

    uses_rng: ClassVar[bool] = False
    relu_family: ClassVar[bool] = True

    def forward(self, A, rng):
        Z = np.maximum(A, 0)
        return Z, Z

    def backward(self, Z, dZ, out=None):
        return self, dZ * (Z > 0)


@attrs.frozen
class LeakyRelu:
    """Z = A where A > 0, α·A elsewhere; dA = dZ ⊙ (1 where A > 0, α elsewhere); 0 <= α < 1.

    The bound is what `relu_family` promises: Z > 0 exactly where A > 0 needs α >= 0, and a kink
    at 0 needs α != 1 (a larger α would make the negative side the steep one, and a huge one,
    1e38 say, overflows float32 for any |A| > 3.4, giving NaN probabilities).
    """

    alpha: float = static(0.01, validator=_leaky_slope)

    uses_rng: ClassVar[bool] = False
    relu_family: ClassVar[bool] = True

    def forward(self, A, rng):
        positive = A > 0
        return np.where(positive, A, A * A.dtype.type(self.alpha)), positive

    def backward(self, positive, dZ, out=None):
        return self, np.where(positive, dZ, dZ * dZ.dtype.type(self.alpha))


@attrs.frozen
class Tanh:
    """Z = tanh(A); dA = dZ ⊙ (1 - Z²)."""

    uses_rng: ClassVar[bool] = False

    def forward(self, A, rng):
        Z = np.tanh(A)
        return Z, Z

    def backward(self, Z, dZ, out=None):
        return self, dZ * (1 - Z * Z)


@attrs.frozen
class Sigmoid:
    """Z = σ(A) = 1 / (1 + e^(-A)); dA = dZ ⊙ Z(1 - Z)."""

    uses_rng: ClassVar[bool] = False

    def forward(self, A, rng):
        # σ(A) = (1 + tanh(A/2)) / 2: the same function, and no overflow of e^(-A) for A << 0
        Z = 0.5 * (1 + np.tanh(0.5 * A))
        return Z, Z

    def backward(self, Z, dZ, out=None):
        return self, dZ * (Z * (1 - Z))


@attrs.frozen
class Dropout:
    """Inverted dropout at rate p: while training (rng given) Z = A ⊙ M with
    M = [U ≥ p] / (1 - p), U ~ Uniform[0, 1) per entry, so E[Z] = A; without rng Z = A.
    dA = dZ ⊙ M (dZ itself without rng)."""

    rate: float = static(0.5, validator=_probability)

    uses_rng: ClassVar[bool] = True

    def forward(self, A, rng):
        if rng is None or self.rate == 0:
            return A, None
        keep = rng.random(A.shape, dtype=A.dtype) >= self.rate
        M = keep * A.dtype.type(1 / (1 - self.rate))
        return A * M, M

    def backward(self, M, dZ, out=None):
        return self, dZ if M is None else dZ * M


@attrs.frozen
class Flatten:
    """Z = A with each sample's dimensions flattened: (m, d_1, ..., d_r) -> (m, d_1·...·d_r),
    row-major (images (m, H, W, C) become rows of H·W·C); dA = dZ reshaped back."""

    uses_rng: ClassVar[bool] = False

    def forward(self, A, rng):
        return A.reshape(A.shape[0], -1), A.shape

    def backward(self, shape, dZ, out=None):
        return self, dZ.reshape(shape)


def _shape(instance, attribute, value):
    if not value or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in value):
        raise ValueError(f"Reshape.shape must be one or more positive ints, e.g. (28, 28, 1), got {value!r}")


@attrs.frozen
class Reshape:
    """Z = each row of A as an array of `shape`: (m, n) -> (m, *shape), n = prod(shape); the
    data layer's flat pixel rows become images (m, 28, 28, 1). dA = dZ flattened back."""

    shape: tuple = static(converter=tuple, validator=_shape)

    uses_rng: ClassVar[bool] = False

    @property
    def n_in(self) -> int:
        """The input columns it takes (what `fnn.nn.check_batch` asks of X)."""
        return int(np.prod(self.shape))

    def forward(self, A, rng):
        if A.ndim != 2 or A.shape[1] != self.n_in:
            raise ValueError(f"Reshape to {self.shape} takes rows of {self.n_in} columns, got A of shape {A.shape}")
        return A.reshape(A.shape[0], *self.shape), None

    def backward(self, cache, dZ, out=None):
        return self, dZ.reshape(dZ.shape[0], -1)


ACTIVATIONS = {"relu": Relu, "leaky_relu": LeakyRelu, "tanh": Tanh, "sigmoid": Sigmoid}
ELEMENTWISE = (Relu, LeakyRelu, Tanh, Sigmoid, Dropout)  # width out = width in
