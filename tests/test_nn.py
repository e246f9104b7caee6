"""The math of fnn.nn: gradients against central differences, softmax/cross-entropy properties,
purity, dtypes, input validation, and the classic from-scratch bugs pinned one by one."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from conftest import problems
from fnn.gradcheck import (
    check_grads,
    check_random_network,
    kink_margin,
    numeric_grads,
    parameter_names,
    relative_error,
)

KINK_MARGIN = 1e-4
from fnn.nn import l2_penalty

# Overflow, 0/0 and log(0) are bugs; underflow is not: exp(-2e4) -> 0 is the right answer
# for a probability that small, so it stays silent.
STRICT = dict(over="raise", invalid="raise", divide="raise", under="ignore")


def leaves_bytes(tree) -> list[tuple]:
    """(dtype, shape, raw bytes) of every leaf: equal lists mean bit-identical trees."""
    return [(a.dtype, a.shape, a.tobytes()) for a in map(np.asarray, fnn.tree_leaves(tree))]


def net(*layers) -> fnn.MLP:
    """A ReLU MLP (Dense, Relu, ..., Dense) from (W, b) pairs given as nested lists, in float64."""
    dense = [fnn.Dense(np.array(W, dtype=float), np.array(b, dtype=float)) for W, b in layers]
    return fnn.MLP(tuple(layer for d in dense[:-1] for layer in (d, fnn.Relu())) + (dense[-1],))


# ---------------------------------------------------------------- gradients vs central differences


@settings(max_examples=25, deadline=None)
@given(problems())
def test_backprop_matches_central_differences_on_every_parameter(p):
    # ReLU kinks: a central difference straddling Z = 0 measures neither slope. Biases are
    # random (conftest) and X ~ N(0, 1), so the pre-activations are generic; examples with any
    # hidden |Z| within KINK_MARGIN = 1e-4 of 0 are discarded (a step of eps = 1e-6 moves Z by
    # far less than that), which rejects only a few percent of draws.
    assume(kink_margin(p.params, p.X) > KINK_MARGIN)
    errors = check_grads(p.params, p.X, p.y, p.l2)
    assert [name for name, _ in errors] == parameter_names(p.params)
    assert all(err < 1e-6 for _, err in errors), errors


def test_numeric_grads_of_a_known_function_and_every_entry_is_visited():
    # f(θ) = Σ θ³ / 3 over a tuple of arrays: ∂f/∂θ = θ², exactly known, for every entry.
    theta = (np.arange(6.0).reshape(2, 3) - 2.5, np.array([0.5, -1.5], dtype=np.float32))
    g = numeric_grads(lambda t: sum(float((x**3).sum()) / 3 for x in t), theta)
    assert [x.dtype for x in g] == [np.float64, np.float64]
    for x, gx in zip(theta, g):
        np.testing.assert_allclose(gx, np.asarray(x, dtype=np.float64) ** 2, rtol=1e-8)
    assert theta[1].dtype == np.float32  # the caller's leaves are untouched


def test_relative_error_flags_a_single_wrong_entry():
    rng = np.random.default_rng(3)
    p = fnn.init(rng, (6, 5, 3), dtype=np.float64)
    X, y = rng.standard_normal((4, 6)), rng.integers(0, 3, size=4)
    g = fnn.grads(p, X, y)
    W2 = g.layers[2].W.copy()
    W2[2, 1] *= 1.5
    broken = fnn.MLP((g.layers[0], g.layers[1], fnn.Dense(W2, g.layers[2].b)))
    errors = fnn.tree_leaves(relative_error(g, broken))
    assert errors[0] == 0.0 and errors[1] == 0.0 and errors[3] == 0.0
    assert errors[2] > 1e-3


def test_relative_error_of_zero_leaves_is_zero_and_of_opposite_leaves_is_one():
    z, a = np.zeros(3), np.array([1.0, -2.0, 3.0])
    assert relative_error((z, a), (z, -a)) == (0.0, 1.0)


def test_check_grads_reports_every_parameter_by_name():
    errors = check_random_network(np.random.default_rng(0), sizes=(7, 5, 4, 3), batch=5, l2=0.5)
    assert [name for name, _ in errors] == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(err < 1e-6 for _, err in errors)


def test_check_grads_rejects_a_bad_batch():
    with pytest.raises(ValueError, match="batch must be a positive int"):
        check_random_network(np.random.default_rng(0), batch=0)


def test_numeric_grads_rejects_a_bad_eps():
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        numeric_grads(lambda t: 0.0, (np.zeros(2),), eps=0.0)


# ---------------------------------------------------------------- softmax and cross-entropy


logit_rows = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(-50, 50),
)


@settings(max_examples=60, deadline=None)
@given(logit_rows, st.floats(-1e3, 1e3))
def test_softmax_rows_are_distributions_invariant_to_a_per_row_constant(Z, c):
    P = fnn.softmax(Z)
    assert P.shape == Z.shape and (P >= 0).all()
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    shift = c * np.linspace(-1, 1, Z.shape[0])[:, None]  # a different constant for each row
    np.testing.assert_allclose(fnn.softmax(Z + shift), P, rtol=1e-9, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(logit_rows, st.data())
def test_cross_entropy_is_nonnegative(Z, data):
    y = np.array(data.draw(st.lists(st.integers(0, Z.shape[1] - 1), min_size=Z.shape[0], max_size=Z.shape[0])))
    assert fnn.cross_entropy(Z, y) >= 0.0


@given(st.integers(1, 50), st.integers(1, 20), st.floats(-1e4, 1e4))
def test_cross_entropy_of_equal_logits_is_log_k(k, m, value):
    Z = np.full((m, k), value, dtype=np.float32)
    y = np.arange(m) % k
    assert fnn.cross_entropy(Z, y) == pytest.approx(np.log(k), rel=1e-6, abs=1e-6)


def test_softmax_is_shifted_by_its_row_max():
    # Unshifted, exp(1e4) overflows to inf in float32 and float64 alike, and inf/inf = NaN.
    Z = np.array([[1e4, 1e4 - 1, 1e4 - 3], [-1e4, 0.0, 1e4], [3.0, 1.0, 2.0]], dtype=np.float32)
    shifted = Z.astype(np.float64) - Z.max(axis=1, keepdims=True)
    reference = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    with np.errstate(**STRICT):
        P = fnn.softmax(Z)
        logP = fnn.log_softmax(Z)
    assert P.dtype == np.float32 and logP.dtype == np.float32
    np.testing.assert_allclose(P, reference, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(logP[0], shifted[0] - np.log(np.exp(shifted[0]).sum()), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 16), st.integers(2, 10), st.floats(1e2, 1e4))
def test_loss_and_grads_are_finite_for_extreme_logits(seed, m, k, scale):
    # A softmax-regression layer whose logits reach magnitudes ~scale·few, in float32.
    rng = np.random.default_rng(seed)
    W = (scale * rng.standard_normal((4, k))).astype(np.float32)
    params = fnn.MLP((fnn.Dense(W, np.zeros(k, np.float32)),))
    X = rng.standard_normal((m, 4)).astype(np.float32)
    y = rng.integers(0, k, size=m)
    with np.errstate(**STRICT):
        value, g = fnn.value_and_grads(params, X, y, l2=0.1)
        Z = fnn.forward(params, X)
    assert np.isfinite(value) and value >= 0
    assert all(np.isfinite(leaf).all() for leaf in fnn.tree_leaves(g))
    # Reference in float64 from the same float32 logits: log Σ exp(Z) - Z_y, by logaddexp.
    Z64 = Z.astype(np.float64)
    ce = np.mean(np.logaddexp.reduce(Z64, axis=1) - Z64[np.arange(m), y])
    reference = ce + l2_penalty(params, 0.1, m)
    assert value == pytest.approx(reference, rel=1e-5, abs=1e-5)


def test_loss_of_logits_of_magnitude_1e4_is_exact():
    params = net(([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], [0.0, 0.0, 0.0]))
    params32 = fnn.tree_map(lambda a: a.astype(np.float32), params)
    X = np.array([[1.0, 0.0]], dtype=np.float32)
    with np.errstate(**STRICT):
        losses = [fnn.loss(params32, X, np.array([label])) for label in range(3)]
    assert losses == pytest.approx([0.0, 1e4, 2e4], abs=1e-3)


# ---------------------------------------------------------------- structure, dtypes, step


@settings(max_examples=25, deadline=None)
@given(problems(dtype=np.float32) | problems(dtype=np.float64))
def test_grads_have_the_structure_shapes_and_dtypes_of_params(p):
    g = fnn.grads(p.params, p.X, p.y, p.l2)
    assert type(g) is fnn.MLP and type(g.layers) is tuple
    assert [type(layer) for layer in g.layers] == [type(layer) for layer in p.params.layers]
    assert [(a.shape, a.dtype) for a in fnn.tree_leaves(g)] == [
        (a.shape, a.dtype) for a in fnn.tree_leaves(p.params)
    ]
    value, g2 = fnn.value_and_grads(p.params, p.X, p.y, p.l2)
    assert value == fnn.loss(p.params, p.X, p.y, p.l2)
    assert leaves_bytes(g2) == leaves_bytes(g)


@settings(max_examples=25, deadline=None)
@given(problems(dtype=np.float32) | problems(dtype=np.float64), st.floats(0, 10))
def test_step_with_zero_grads_is_the_identity_and_does_not_alias(p, lr):
    stepped = fnn.step(p.params, fnn.tree_zeros_like(p.params), lr)
    assert leaves_bytes(stepped) == leaves_bytes(p.params)
    assert not any(
        np.shares_memory(new, old)
        for new, old in zip(fnn.tree_leaves(stepped), fnn.tree_leaves(p.params))
    )


def test_step_moves_each_leaf_against_its_gradient():
    rng = np.random.default_rng(0)
    params = fnn.init(rng, (3, 4, 2))
    g = fnn.tree_map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), params)
    stepped = fnn.step(params, g, 0.5)
    for new, old, d in zip(*map(fnn.tree_leaves, (stepped, params, g))):
        assert new.dtype == np.float32
        np.testing.assert_array_equal(new, old - np.float32(0.5) * d)


def test_float32_stays_float32_everywhere():
    rng = np.random.default_rng(1)
    params = fnn.init(rng, (6, 5, 4, 3))
    X = rng.standard_normal((7, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=7)
    assert fnn.forward(params, X).dtype == np.float32
    assert fnn.predict_proba(params, X).dtype == np.float32
    assert all(a.dtype == np.float32 for a in fnn.tree_leaves(fnn.grads(params, X, y, l2=0.3)))
    assert all(a.dtype == np.float32 for a in fnn.tree_leaves(fnn.step(params, params, 0.1)))
    assert fnn.predict(params, X).dtype == np.int64


@pytest.mark.parametrize("X_dtype", [np.float64, np.int64, np.uint8])
def test_other_input_dtypes_are_cast_to_the_params_dtype(X_dtype):
    rng = np.random.default_rng(2)
    params = fnn.init(rng, (6, 5, 3))
    X = (10 * rng.random((4, 6))).astype(X_dtype)
    y = rng.integers(0, 3, size=4)
    assert fnn.forward(params, X).dtype == np.float32
    np.testing.assert_array_equal(fnn.forward(params, X), fnn.forward(params, X.astype(np.float32)))
    assert all(a.dtype == np.float32 for a in fnn.tree_leaves(fnn.grads(params, X, y)))


def test_float64_end_to_end():
    rng = np.random.default_rng(3)
    params = fnn.init(rng, (6, 5, 3), dtype=np.float64)
    X, y = rng.standard_normal((4, 6)), rng.integers(0, 3, size=4)
    assert fnn.forward(params, X).dtype == np.float64
    assert all(a.dtype == np.float64 for a in fnn.tree_leaves(fnn.grads(params, X, y, l2=1.0)))
    assert all(a.dtype == np.float64 for a in fnn.tree_leaves(fnn.step(params, params, 0.1)))


# ---------------------------------------------------------------- purity


def test_activations_and_softmaxes_leave_their_input_alone():
    Z = np.array([[-1.0, 0.0, 2.0], [3.0, -4.0, 5.0]], dtype=np.float32)
    before = Z.copy()
    layers = (fnn.Relu(), fnn.LeakyRelu(0.1), fnn.Tanh(), fnn.Sigmoid())
    for f in (fnn.softmax, fnn.log_softmax, *(lambda A, layer=layer: layer.forward(A, None)[0] for layer in layers)):
        out = f(Z)
        assert not np.shares_memory(out, Z)
        np.testing.assert_array_equal(Z, before)


@settings(max_examples=20, deadline=None)
@given(problems(dtype=np.float32) | problems(dtype=np.float64), st.booleans())
def test_pure_functions_do_not_mutate_or_alias_their_inputs(p, float64_X):
    X = p.X.astype(np.float64) if float64_X else p.X
    inputs = (p.params, X, p.y)
    before = leaves_bytes(inputs)
    outputs = [
        fnn.forward(p.params, X),
        fnn.predict_proba(p.params, X),
        fnn.predict(p.params, X),
        fnn.grads(p.params, X, p.y, p.l2),
        fnn.value_and_grads(p.params, X, p.y, p.l2)[1],
        fnn.step(p.params, p.params, 0.1),
        fnn.tree_map(lambda a: a * 2, p.params),
    ]
    fnn.loss(p.params, X, p.y, p.l2)
    fnn.init(np.random.default_rng(p.seed), (3, 2))
    assert leaves_bytes(inputs) == before
    # No result may be a view of an input: writing to it would corrupt the caller's model.
    out_leaves = [leaf for out in outputs for leaf in fnn.tree_leaves(out)]
    for new in out_leaves:
        assert not any(np.shares_memory(new, old) for old in fnn.tree_leaves(inputs))


def test_init_consumes_only_the_rng_it_is_given():
    state = np.random.get_state()[1].copy()
    fnn.init(np.random.default_rng(0), (5, 4, 3))
    np.testing.assert_array_equal(np.random.get_state()[1], state)


# ---------------------------------------------------------------- classic from-scratch bugs


def test_bias_gradient_is_per_unit_column_sums_of_dZ():
    # Two inputs, 3 hidden units, 3 classes, 4 samples: every unit sees a different dZ column.
    params = net(
        ([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0]], [0.1, 0.2, 0.3]),
        ([[1.0, -1.0, 0.2], [0.5, 0.5, -0.5], [-1.0, 2.0, 1.0]], [0.0, 0.1, -0.1]),
    )
    X = np.array([[1.0, 0.5], [-0.5, 2.0], [2.0, -1.0], [0.3, 0.3]])
    y = np.array([0, 2, 1, 2])
    m = X.shape[0]
    (W1, b1), (W2, b2) = ((layer.W, layer.b) for layer in params.layers[::2])
    Z1 = X @ W1 + b1
    A1 = np.maximum(Z1, 0)
    Z2 = A1 @ W2 + b2
    P = np.exp(Z2) / np.exp(Z2).sum(axis=1, keepdims=True)
    dZ2 = (P - np.eye(3)[y]) / m
    dZ1 = dZ2 @ W2.T * (Z1 > 0)
    g = fnn.grads(params, X, y)
    for db, dZ in ((g.layers[0].b, dZ1), (g.layers[2].b, dZ2)):
        assert db.shape == (3,)
        np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=1e-12, atol=1e-15)
        assert len(np.unique(np.round(db, 12))) == 3  # not one scalar broadcast to all units


@settings(max_examples=25, deadline=None)
@given(problems(l2=st.just(0.0)))
def test_gradient_of_a_batch_is_the_mean_of_per_sample_gradients(p):
    m = p.X.shape[0]
    batch = fnn.grads(p.params, p.X, p.y)
    singles = [fnn.grads(p.params, p.X[i : i + 1], p.y[i : i + 1]) for i in range(m)]
    mean = fnn.tree_map(lambda *leaves: sum(leaves) / m, *singles)
    assert fnn.tree_allclose(batch, mean, rtol=1e-9, atol=1e-12)
    # Doubling the batch doubles the sum and m alike: 1/m must use the batch's own rows.
    doubled = fnn.grads(p.params, np.concatenate([p.X, p.X]), np.concatenate([p.y, p.y]))
    assert fnn.tree_allclose(doubled, batch, rtol=1e-9, atol=1e-12)
    value2 = fnn.loss(p.params, np.concatenate([p.X, p.X]), np.concatenate([p.y, p.y]))
    assert value2 == pytest.approx(fnn.loss(p.params, p.X, p.y), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(problems(l2=st.sampled_from([0.01, 0.5, 3.0])))
def test_l2_is_in_loss_and_grads_for_every_weight_matrix_and_never_on_biases(p):
    m, l2 = p.X.shape[0], p.l2
    dense = [i for i, layer in enumerate(p.params.layers) if isinstance(layer, fnn.Dense)]
    sum_sq = sum(float((p.params.layers[i].W ** 2).sum()) for i in dense)
    gap = fnn.loss(p.params, p.X, p.y, l2) - fnn.loss(p.params, p.X, p.y)
    assert gap == pytest.approx(l2 / (2 * m) * sum_sq, rel=1e-9)
    with_l2, without = fnn.grads(p.params, p.X, p.y, l2), fnn.grads(p.params, p.X, p.y)
    for layer, g, g0 in ((p.params.layers[i], with_l2.layers[i], without.layers[i]) for i in dense):
        np.testing.assert_allclose(g.W - g0.W, l2 / m * layer.W, rtol=1e-7, atol=1e-12)
        np.testing.assert_array_equal(g.b, g0.b)


# ---------------------------------------------------------------- bad input


def small():
    params = fnn.init(np.random.default_rng(0), (4, 5, 3))
    X = np.ones((3, 4), dtype=np.float32)
    return params, X, np.array([0, 1, 2])


def X_with(value):
    X = np.ones((3, 4))
    X[2, 1] = value
    return X


BAD_BATCHES = [
    (np.ones((3, 5)), ValueError, r"X must have shape \(m, 4\).*got \(3, 5\)"),
    (np.ones(4), ValueError, r"X must have shape \(m, 4\).*got \(4,\)"),
    (np.ones((0, 4)), ValueError, r"empty batch"),
    ([[1.0] * 4] * 3, TypeError, r"X must be a numpy array"),
    (np.full((3, 4), "a"), TypeError, r"X must hold numbers"),
    (X_with(np.nan), ValueError, r"non-finite .* row 2"),
    (X_with(np.inf), ValueError, r"non-finite .* row 2"),
    (X_with(-np.inf), ValueError, r"non-finite .* row 2"),
]


@pytest.mark.parametrize("X, error, message", BAD_BATCHES)
@pytest.mark.parametrize("f", [fnn.forward, fnn.predict, fnn.predict_proba, fnn.loss, fnn.grads])
def test_bad_X_raises_naming_what_was_expected(f, X, error, message):
    params, _, y = small()
    args = (params, X) if f in (fnn.forward, fnn.predict, fnn.predict_proba) else (params, X, y)
    with pytest.raises(error, match=message):
        f(*args)


BAD_LABELS = [
    (np.array([0, 3, 1]), ValueError, r"labels must be in \[0, 3\).*got y\[1\] = 3"),
    (np.array([0, 1, -1]), ValueError, r"labels must be in \[0, 3\).*got y\[2\] = -1"),
    (np.array([0.0, 1.0, 2.0]), TypeError, r"y must be .*integer labels, got float64"),
    (np.array([0, 1]), ValueError, r"y must have shape \(3,\) to match X's rows, got \(2,\)"),
    (np.array([[0, 1, 2]]), ValueError, r"y must have shape \(3,\)"),
    ([0, 1, 2], TypeError, r"y must be a numpy array of integer labels"),
]


@pytest.mark.parametrize("y, error, message", BAD_LABELS)
@pytest.mark.parametrize("f", [fnn.loss, fnn.grads, fnn.value_and_grads])
def test_bad_labels_raise_naming_what_was_expected(f, y, error, message):
    params, X, _ = small()
    with pytest.raises(error, match=message):
        f(params, X, y)


@pytest.mark.parametrize("l2", [-0.1, np.nan, np.inf])
@pytest.mark.parametrize("f", [fnn.loss, fnn.grads, fnn.value_and_grads])
def test_bad_l2_raises(f, l2):
    params, X, y = small()
    with pytest.raises(ValueError, match=r"l2 must be a finite number >= 0"):
        f(params, X, y, l2)


# ---------------------------------------------------------------- it learns


def test_gradient_descent_learns_gaussian_blobs():
    # Three well-separated Gaussian blobs in 10-D: full-batch GD with fnn.step must lower the
    # loss at every one of 20 steps and end far above chance (1/3).
    rng = np.random.default_rng(0)
    centres = 3.0 * rng.standard_normal((3, 10))
    y = rng.integers(0, 3, size=300)
    X = (centres[y] + rng.standard_normal((300, 10))).astype(np.float32)
    params = fnn.init(rng, (10, 16, 3))
    assert np.mean(fnn.predict(params, X) == y) < 0.7

    def descend(state, _):
        params, losses = state
        value, g = fnn.value_and_grads(params, X, y)
        return fnn.step(params, g, 0.05), losses + (value,)

    params, losses = reduce(descend, range(20), (params, ()))
    losses += (fnn.loss(params, X, y),)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert np.mean(fnn.predict(params, X) == y) > 0.9


@pytest.mark.parametrize("l2", [None, "abc", True])
def test_l2_that_is_not_a_number_is_named(l2):
    params = fnn.init(np.random.default_rng(0), (4, 3, 2))
    with pytest.raises(TypeError, match="l2 must be a number"):
        fnn.loss(params, np.zeros((2, 4), np.float32), np.array([0, 1]), l2=l2)
