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
        elif isinstance(layer, fnn.Conv2D):
            K, b = next(params), next(params)
            weights.append(K)
            A = conv2d(A, K, layer.stride, layer.padding) + b
        elif isinstance(layer, fnn.MaxPool2D):
            A = max_pool(A, layer.size, layer.stride or layer.size)
        elif isinstance(layer, fnn.Reshape):
            A = anp.reshape(A, (A.shape[0], *layer.shape))
        elif isinstance(layer, fnn.Flatten):
            A = anp.reshape(A, (A.shape[0], -1))
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


def conv2d(A, K, stride, padding):
    """Σ over kernel offsets (u, v) of the strided window at (u, v) times K[u, v] (no im2col)."""
    kh, kw = K.shape[:2]
    H, W = A.shape[1:3]
    if padding == "same":
        Ho, Wo = -(-H // stride), -(-W // stride)
        ph, pw = max((Ho - 1) * stride + kh - H, 0), max((Wo - 1) * stride + kw - W, 0)
        A = anp.pad(A, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="constant")
    else:
        Ho, Wo = (H - kh) // stride + 1, (W - kw) // stride + 1
    return sum(
        anp.dot(A[:, u : u + stride * Ho : stride, v : v + stride * Wo : stride, :], K[u, v])
        for u in range(kh) for v in range(kw)
    )


def max_pool(A, size, stride):
    """The max of the size x size shifted views (inputs without ties: autograd splits ties)."""
    H, W = A.shape[1:3]
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    views = [A[:, u : u + stride * Ho : stride, v : v + stride * Wo : stride, :] for u in range(size) for v in range(size)]
    return anp.max(anp.stack(views), axis=0)


def oracle_value_and_grads(net: fnn.MLP, X, y, l2: float, seed: int | None):
    leaves = fnn.tree_leaves(net)
    rng = None if seed is None else np.random.default_rng(seed)
    value, g = autograd.value_and_grad(oracle_loss)(leaves, net.layers, X, y, l2, rng)
    return value, g


def fnn_value_and_grads(net: fnn.MLP, X, y, l2: float, seed: int | None):
    rng = None if seed is None else np.random.default_rng(seed)
    value, g = fnn.value_and_grads(net, X, y, l2, rng=rng)
    return value, fnn.tree_leaves(g)


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


@pytest.mark.parametrize("stride, padding", [(1, "valid"), (2, "same"), (1, "same"), (2, "valid")])
@pytest.mark.parametrize("l2", [0.0, 0.4])
def test_conv2d_max_pool_flatten_and_reshape(stride, padding, l2):
    """A CNN of every image layer: Reshape, Conv2D (this stride and padding), MaxPool2D (2 and
    an overlapping 3 at stride 2), Flatten; random inputs, so no window holds a tie."""
    rng = np.random.default_rng(5)
    head = [
        fnn.Reshape((9, 11, 2)),
        fnn.Conv2D(rng.standard_normal((3, 3, 2, 4)) * 0.4, 0.1 * rng.standard_normal(4), stride=stride, padding=padding),
        fnn.Tanh(), fnn.MaxPool2D(2),
        fnn.Conv2D(rng.standard_normal((2, 2, 4, 3)) * 0.4, 0.1 * rng.standard_normal(3), padding="same"),
        fnn.Relu(), fnn.MaxPool2D(3, stride=2) if stride == 1 else fnn.MaxPool2D(1), fnn.Flatten(),
    ]
    X = rng.standard_normal((6, 9 * 11 * 2))
    width = fnn.nn.forward_pass(fnn.Network(head), X)[0][-1].shape[1]
    net = fnn.Network([*head, fnn.Dense(rng.standard_normal((width, 5)) * 0.3, 0.1 * rng.standard_normal(5))])
    assert_agree(net, X, rng.integers(0, 5, size=6), l2, seed=None)


def test_init_cnn_with_dropout():
    rng = np.random.default_rng(6)
    net = random_biases(fnn.init(rng, (100, 12, 4), conv=(3, 2), image_shape=(10, 10, 1), dropout=0.3, dtype=np.float64), rng)
    X = rng.standard_normal((5, 100))
    assert_agree(net, X, rng.integers(0, 4, size=5), 0.2, seed=11)
