"""The light autodiff oracle: fnn's loss and gradients equal those HIPS autograd derives from an
independent NumPy forward pass, in float64 to 1e-10 relative, over every built-in layer.

autograd installs with the `test` extra (a pure-Python package of a few hundred KB), so these
tests run on every machine; `tests/test_torch_oracle.py` checks the same against PyTorch when
it is installed. The oracle's forward pass below is written from the layers' equations, not
from fnn's code: only the dropout masks are shared, drawn from a copy of the Generator fnn
draws from, in the same order (layer by layer, `rng.random(A.shape) >= rate`, scaled by
1 / (1 - rate)), so that both differentiate the same function.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.scipy.special import logsumexp
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn

TOL = 1e-10


def oracle_loss(leaves: list, layers: tuple, X, y, l2: float, rng: np.random.Generator | None):
    """J = -(1/m) Σ_i log softmax(A_L)[i, y_i] + (l2/(2m)) Σ ||W||², the layers' equations in
    autograd.numpy. leaves: [W_1, b_1, W_2, b_2, ...] in the order of the Dense layers."""
    m = X.shape[0]
    A, weights, params = X, [], iter(leaves)
    for layer in layers:
        if isinstance(layer, fnn.Dense):
            W, b = next(params), next(params)
            weights.append(W)
            A = anp.dot(A, W) + b
        elif isinstance(layer, fnn.Relu):
            A = anp.maximum(A, 0.0)
        elif isinstance(layer, fnn.LeakyRelu):
            A = anp.where(A > 0, A, layer.alpha * A)
        elif isinstance(layer, fnn.Tanh):
            A = anp.tanh(A)
        elif isinstance(layer, fnn.Sigmoid):
            A = 1.0 / (1.0 + anp.exp(-A))
        elif isinstance(layer, fnn.Dropout):
            if rng is not None and layer.rate > 0:
                A = A * ((rng.random(A.shape) >= layer.rate) / (1.0 - layer.rate))
        else:
            raise TypeError(f"the oracle has no rule for {type(layer).__name__}")
    log_p = A - logsumexp(A, axis=1, keepdims=True)
    ce = -anp.sum(log_p[anp.arange(m), y]) / m
    return ce + l2 / (2 * m) * sum(anp.sum(W * W) for W in weights)


def oracle_value_and_grads(net: fnn.MLP, X, y, l2: float, seed: int | None):
    leaves = [a for layer in net.layers if isinstance(layer, fnn.Dense) for a in (layer.W, layer.b)]
    rng = None if seed is None else np.random.default_rng(seed)
    value, g = autograd.value_and_grad(oracle_loss)(leaves, net.layers, X, y, l2, rng)
    return value, g


def fnn_value_and_grads(net: fnn.MLP, X, y, l2: float, seed: int | None):
    rng = None if seed is None else np.random.default_rng(seed)
    value, g = fnn.value_and_grads(net, X, y, l2, rng=rng)
    dense = [a for layer in g.layers if isinstance(layer, fnn.Dense) for a in (layer.W, layer.b)]
    return value, dense


def assert_agree(net, X, y, l2, seed):
    (v1, g1), (v2, g2) = fnn_value_and_grads(net, X, y, l2, seed), oracle_value_and_grads(net, X, y, l2, seed)
    assert abs(v1 - v2) <= TOL * abs(v2), (v1, v2)
    assert len(g1) == len(g2)
    for i, (a, b) in enumerate(zip(g1, g2)):
        assert a.shape == b.shape and a.dtype == np.float64
        err = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)
        assert err <= TOL, f"leaf {i} ({'W' if i % 2 == 0 else 'b'}{i // 2 + 1}): relative error {err:.2e}"


def random_biases(net: fnn.MLP, rng: np.random.Generator) -> fnn.MLP:
    """He weights plus N(0, 0.1²) biases, so that every bias gradient differs."""
    return fnn.MLP(tuple(
        fnn.Dense(layer.W, 0.1 * rng.standard_normal(layer.b.shape)) if isinstance(layer, fnn.Dense) else layer
        for layer in net.layers
    ))


def every_layer_net(rng: np.random.Generator, n: int = 12, k: int = 5) -> fnn.MLP:
    """Three hidden layers that between them use every built-in layer: Dense, Relu, LeakyRelu,
    Tanh, Sigmoid and Dropout (two rates)."""
    def dense(n_in, n_out):
        return fnn.Dense(rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in), 0.1 * rng.standard_normal(n_out))

    return fnn.MLP((
        dense(n, 16), fnn.Relu(), fnn.Dropout(0.3),
        dense(16, 11), fnn.LeakyRelu(0.2), fnn.Tanh(),
        dense(11, 9), fnn.Sigmoid(), fnn.Dropout(0.5),
        dense(9, k),
    ))


@pytest.mark.parametrize("l2", [0.0, 0.7])
@pytest.mark.parametrize("seed", [None, 3])  # None: evaluation mode, Dropout is the identity
def test_every_built_in_layer_three_hidden_layers(l2, seed):
    rng = np.random.default_rng(0)
    net = every_layer_net(rng)
    X, y = rng.standard_normal((23, 12)), rng.integers(0, 5, size=23)
    assert_agree(net, X, y, l2, seed)


def test_the_dropout_masks_drop_units():
    """The test above is not vacuous: with seed 3 the masks zero some units and change the loss."""
    rng = np.random.default_rng(0)
    net = every_layer_net(rng)
    X, y = rng.standard_normal((23, 12)), rng.integers(0, 5, size=23)
    outputs, _ = fnn.nn.forward_pass(net, X, np.random.default_rng(3))
    assert (outputs[3] == 0).mean() > 0.2  # after Dropout(0.3)
    assert fnn.loss(net, X, y, rng=np.random.default_rng(3)) != fnn.loss(net, X, y)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_init_networks_of_each_activation(activation):
    rng = np.random.default_rng(1)
    net = random_biases(fnn.init(rng, (784, 64, 32, 16, 10), activation=activation, dropout=0.2, dtype=np.float64), rng)
    X, y = rng.random((40, 784)), rng.integers(0, 10, size=40)
    assert_agree(net, X, y, 0.5, seed=7)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 10), min_size=2, max_size=5).map(tuple),
    m=st.integers(1, 8),
    l2=st.sampled_from([0.0, 0.3, 2.0]),
    activation=st.sampled_from(["relu", "leaky_relu", "tanh", "sigmoid"]),
    dropout=st.sampled_from([0.0, 0.4]),
)
def test_random_architectures(seed, sizes, m, l2, activation, dropout):
    rng = np.random.default_rng(seed)
    net = random_biases(fnn.init(rng, sizes, activation=activation, dropout=dropout, dtype=np.float64), rng)
    X, y = rng.standard_normal((m, sizes[0])), rng.integers(0, sizes[-1], size=m)
    assert_agree(net, X, y, l2, seed)

