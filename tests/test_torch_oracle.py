"""The equivalence oracle: fnn's loss and gradients equal PyTorch autograd's, from the same
weights and batch, to 1e-6 in float64 (and to float32 rounding in float32).

PyTorch is an optional peer (`pip install .[bench]`): without it these tests are skipped. They
are `slow`: importing torch alone takes 4 s, so the fixture below imports it only when one runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def peers():
    """benchmarks.peers, which imports torch (skipped when PyTorch is not installed)."""
    pytest.importorskip("torch", reason="PyTorch is not installed: an optional multi-gigabyte peer (pip install torch==2.13.0)")
    import benchmarks.peers

    return benchmarks.peers


def network_and_batch(seed: int, sizes: tuple[int, ...], m: int, dtype=np.float64):
    """He weights plus N(0, 0.1²) biases (so every bias gradient differs), X ~ N(0, 1), y uniform."""
    rng = np.random.default_rng(seed)
    net = fnn.init(rng, sizes, dtype=dtype)
    net = fnn.MLP(tuple(fnn.Dense(layer.W, (0.1 * rng.standard_normal(layer.b.shape)).astype(dtype))
                        if isinstance(layer, fnn.Dense) else layer for layer in net.layers))
    X = rng.standard_normal((m, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=m)
    return net, X, y


def assert_match(fnn_result, torch_result, tol):
    (v1, g1), (v2, g2) = fnn_result, torch_result
    assert abs(v1 - v2) <= tol * max(1.0, abs(v2))
    dense = [(a, b) for a, b in zip(g1.layers, g2.layers) if isinstance(b, fnn.Dense)]
    for l, (a, b) in enumerate(dense, start=1):
        assert a.W.shape == b.W.shape and a.b.shape == b.b.shape
        scale = max(1.0, float(np.abs(b.W).max()), float(np.abs(b.b).max()))
        assert np.abs(a.W - b.W).max() <= tol * scale, f"dW{l}"
        assert np.abs(a.b - b.b).max() <= tol * scale, f"db{l}"


@pytest.mark.parametrize(
    "sizes, m, l2",
    [
        ((784, 128, 10), 64, 0.0),  # the default network
        ((784, 128, 10), 64, 0.5),
        ((20, 16, 8, 5), 7, 1.0),  # two hidden layers
        ((6, 3), 5, 0.1),  # no hidden layer: multinomial logistic regression
    ],
)
def test_float64_loss_and_grads_match_torch_autograd(peers, sizes, m, l2):
    net, X, y = network_and_batch(0, sizes, m)
    assert_match(fnn.value_and_grads(net, X, y, l2), peers.torch_value_and_grads(net, X, y, l2), tol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    m=st.integers(1, 9),
    l2=st.sampled_from([0.0, 0.3, 2.0]),
)
def test_float64_agreement_on_random_architectures(peers, seed, sizes, m, l2):
    net, X, y = network_and_batch(seed, sizes, m)
    assert_match(fnn.value_and_grads(net, X, y, l2), peers.torch_value_and_grads(net, X, y, l2), tol=1e-6)


def test_float32_agrees_to_float32_rounding(peers):
    net, X, y = network_and_batch(1, (784, 128, 10), 128, dtype=np.float32)
    value, g = fnn.value_and_grads(net, X, y, 0.1)
    assert all(leaf.dtype == np.float32 for leaf in fnn.tree_leaves(g))
    assert_match((value, g), peers.torch_value_and_grads(net, X, y, 0.1), tol=1e-4)


def test_logits_match_torch_forward(peers):
    import torch

    net, X, _ = network_and_batch(2, (30, 17, 4), 11)
    with torch.no_grad():
        expected = peers.torch_mlp(net)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(fnn.forward(net, X), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_a_cnn_matches_torch_to_1e10(peers, padding):
    """Reshape, Conv2D, MaxPool2D and Flatten against torch's Conv2d, MaxPool2d and NCHW layout
    (random inputs: no window holds a tie), float64, relative to the largest gradient."""
    rng = np.random.default_rng(3)
    head = [
        fnn.Reshape((10, 12, 2)),
        fnn.Conv2D(rng.standard_normal((3, 3, 2, 5)) * 0.4, 0.1 * rng.standard_normal(5), padding=padding),
        fnn.Relu(), fnn.MaxPool2D(2),
        fnn.Conv2D(rng.standard_normal((2, 2, 5, 3)) * 0.4, 0.1 * rng.standard_normal(3), stride=2),
        fnn.Tanh(), fnn.Flatten(),
    ]
    X = rng.standard_normal((7, 240))
    width = fnn.nn.forward_pass(fnn.Network(head), X)[0][-1].shape[1]
    net = fnn.Network([*head, fnn.Dense(rng.standard_normal((width, 4)) * 0.3, 0.1 * rng.standard_normal(4))])
    y = rng.integers(0, 4, size=7)
    (v1, g1), (v2, g2) = fnn.value_and_grads(net, X, y, 0.3), peers.torch_value_and_grads(net, X, y, 0.3)
    assert abs(v1 - v2) <= 1e-10 * abs(v2)
    for a, b in zip(fnn.tree_leaves(g1), fnn.tree_leaves(g2)):
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-10 * np.abs(b).max()
