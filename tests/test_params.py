"""fnn.params: He initialisation is seeded, bit-reproducible, has variance 2/fan_in, zero biases
and the requested dtype; bad arguments are refused with a message saying what was expected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn

sizes_strategy = st.lists(st.integers(1, 30), min_size=2, max_size=5).map(tuple)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), sizes_strategy, st.sampled_from([np.float32, np.float64]))
def test_init_has_the_requested_shapes_dtype_and_zero_biases(seed, sizes, dtype):
    params = fnn.init(np.random.default_rng(seed), sizes, dtype=dtype)
    assert fnn.layer_sizes(params) == sizes
    dense = params.layers[::2]  # Dense, Relu, Dense, ..., Dense
    assert len(params.layers) == 2 * len(sizes) - 3
    assert all(isinstance(layer, fnn.Relu) for layer in params.layers[1::2])
    for layer, n_in, n_out in zip(dense, sizes[:-1], sizes[1:]):
        assert layer.W.shape == (n_in, n_out) and layer.b.shape == (n_out,)
        assert layer.W.dtype == dtype and layer.b.dtype == dtype
        assert not layer.b.any()


def test_default_is_784_128_10_float32():
    params = fnn.init(np.random.default_rng(0))
    assert fnn.layer_sizes(params) == (784, 128, 10)
    assert {leaf.dtype for leaf in fnn.tree_leaves(params)} == {np.dtype(np.float32)}


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), sizes_strategy, st.sampled_from([np.float32, np.float64]))
def test_same_seed_same_bits_different_seed_different_weights(seed, sizes, dtype):
    a = fnn.init(np.random.default_rng(seed), sizes, dtype=dtype)
    b = fnn.init(np.random.default_rng(seed), sizes, dtype=dtype)
    assert [x.tobytes() for x in fnn.tree_leaves(a)] == [x.tobytes() for x in fnn.tree_leaves(b)]
    c = fnn.init(np.random.default_rng(seed + 1), sizes, dtype=dtype)
    assert any(not np.array_equal(x, z) for x, z in zip(fnn.tree_leaves(a), fnn.tree_leaves(c)))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_have_the_he_variance_2_over_fan_in(seed, dtype):
    # For N iid N(0, σ²) entries, s² = ΣW²/N (the mean is known to be 0) is σ²·χ²_N/N, and
    # χ²_N/N has mean 1 and standard deviation sqrt(2/N): by the normal approximation (N ≥ 1280
    # here) |s²/σ² - 1| < 5·sqrt(2/N) fails with probability ~6e-7. Likewise the sample mean is
    # N(0, σ²/N), so |mean| < 5·σ/sqrt(N).
    params = fnn.init(np.random.default_rng(seed), (784, 128, 64, 10), dtype=dtype)
    for layer in params.layers[::2]:
        n_in = layer.W.shape[0]
        N, var = layer.W.size, 2.0 / n_in
        W = layer.W.astype(np.float64)
        assert abs(np.mean(W**2) / var - 1) < 5 * np.sqrt(2 / N)
        assert abs(W.mean()) < 5 * np.sqrt(var / N)


def test_records_are_frozen():
    params = fnn.init(np.random.default_rng(0), (3, 2))
    with pytest.raises(AttributeError):
        params.layers = ()
    with pytest.raises(AttributeError):
        params.layers[0].W = np.zeros((3, 2))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(rng=np.random.RandomState(0)), TypeError, r"rng must be a numpy.random.Generator.*got RandomState"),
        (dict(rng=0), TypeError, r"rng must be a numpy.random.Generator.*got int"),
        (dict(rng=None), TypeError, r"rng must be a numpy.random.Generator.*got NoneType"),
        (dict(sizes=(784,)), ValueError, r"sizes must be two or more positive ints.*\(784,\)"),
        (dict(sizes=()), ValueError, r"sizes must be two or more positive ints"),
        (dict(sizes=(784, 0, 10)), ValueError, r"sizes must be two or more positive ints.*\(784, 0, 10\)"),
        (dict(sizes=(784, -5)), ValueError, r"positive ints"),
        (dict(sizes=(784, 10.0)), ValueError, r"positive ints.*10\.0"),
        (dict(sizes=(784, "10")), ValueError, r"positive ints"),
        (dict(dtype=np.int32), TypeError, r"dtype must be float32 or float64, got int32"),
        (dict(dtype=np.float16), TypeError, r"dtype must be float32 or float64, got float16"),
        (dict(dtype=np.complex128), TypeError, r"dtype must be float32 or float64, got complex128"),
    ],
)
def test_init_refuses_bad_arguments(kwargs, error, message):
    args = dict(rng=np.random.default_rng(0), sizes=(4, 3), dtype=np.float32) | kwargs
    with pytest.raises(error, match=message):
        fnn.init(**args)


def test_sizes_may_be_numpy_ints_or_any_sequence():
    a = fnn.init(np.random.default_rng(0), np.array([5, 4, 3]))
    b = fnn.init(np.random.default_rng(0), [5, 4, 3])
    assert fnn.layer_sizes(a) == fnn.layer_sizes(b) == (5, 4, 3)
    assert fnn.tree_allclose(a, b, rtol=0)


def test_a_bool_is_not_a_layer_size():
    with pytest.raises(ValueError, match="sizes must be"):
        fnn.init(np.random.default_rng(0), (4, True, 2))
