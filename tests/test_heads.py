"""Row weights and the multilabel sigmoid head (`fnn.nn`): their loss and gradients against an
autograd oracle written from the equations, and the properties that define them: a row of
weight 0 is as if absent, an integer weight is that many copies of the row, weights all 1 are
the unweighted head bit for bit."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.scipy.special import logsumexp
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.training import evaluate

TOL = 1e-10


def problem(seed: int, m: int = 12, sizes=(5, 7, 4), activation="tanh"):
    rng = np.random.default_rng(seed)
    params = fnn.init(rng, sizes, activation, dtype=np.float64)
    X = rng.normal(size=(m, sizes[0]))
    y = rng.integers(0, sizes[-1], m)
    Y = (rng.random((m, sizes[-1])) < 0.4).astype(np.float64)
    w = rng.random(m) * 3
    return params, X, y, Y, w


def oracle(leaves, X, target, w, l2, multilabel):
    """J of a 1-hidden-layer tanh network, from the module docstring's equations."""
    W1, b1, W2, b2 = leaves
    Z = anp.dot(anp.tanh(anp.dot(X, W1) + b1), W2) + b2
    if multilabel:
        losses = anp.sum(anp.logaddexp(0.0, Z) - target * Z, axis=1)
    else:
        log_p = Z - logsumexp(Z, axis=1, keepdims=True)
        losses = -log_p[np.arange(X.shape[0]), target]
    M = anp.sum(w)
    return anp.sum(w * losses) / M + l2 / (2 * M) * (anp.sum(W1 * W1) + anp.sum(W2 * W2))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), multilabel=st.booleans(), l2=st.sampled_from([0.0, 0.7]))
def test_weighted_heads_match_an_autograd_oracle(seed, multilabel, l2):
    params, X, y, Y, w = problem(seed)
    target = Y if multilabel else y
    value, grads = fnn.value_and_grads(params, X, target, l2, w=w)
    leaves = fnn.tree_leaves(params)
    expected = oracle(leaves, X, target, w, l2, multilabel)
    assert value == pytest.approx(float(expected), rel=TOL)
    for got, want in zip(fnn.tree_leaves(grads), autograd.grad(oracle)(leaves, X, target, w, l2, multilabel)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_unweighted_multilabel_matches_the_oracle_with_weights_one():
    params, X, _, Y, _ = problem(3)
    ones = np.ones(X.shape[0])
    value, grads = fnn.value_and_grads(params, X, Y, 0.2)
    leaves = fnn.tree_leaves(params)
    assert value == pytest.approx(float(oracle(leaves, X, Y, ones, 0.2, True)), rel=TOL)
    for got, want in zip(fnn.tree_leaves(grads), autograd.grad(oracle)(leaves, X, Y, ones, 0.2, True)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("multilabel", [False, True])
def test_a_row_of_weight_zero_is_as_if_absent_and_an_integer_weight_is_copies(multilabel):
    params, X, y, Y, _ = problem(5)
    target = Y if multilabel else y
    w = np.array([0, 1, 2, 1, 3, 0, 1, 1, 2, 1, 1, 1], dtype=np.float64)
    repeated = np.repeat(np.arange(len(w)), w.astype(int))
    value, grads = fnn.value_and_grads(params, X, target, 0.3, w=w)
    value_r, grads_r = fnn.value_and_grads(params, X[repeated], target[repeated], 0.3)
    assert value == pytest.approx(value_r, rel=1e-12)
    assert fnn.tree_allclose(grads, grads_r, rtol=1e-10, atol=1e-13)
    loss, acc = evaluate(params, X, target, 0.3, w=w)
    loss_r, acc_r = evaluate(params, X[repeated], target[repeated], 0.3)
    assert loss == pytest.approx(loss_r, rel=1e-12) and acc == pytest.approx(acc_r, rel=1e-12)


def test_weights_of_one_give_the_unweighted_head():
    params, X, y, _, _ = problem(7)
    value, grads = fnn.value_and_grads(params, X, y, 0.3)
    value_w, grads_w = fnn.value_and_grads(params, X, y, 0.3, w=np.ones(len(y)))
    assert value_w == pytest.approx(value, rel=1e-14)
    assert fnn.tree_allclose(grads, grads_w, rtol=1e-13, atol=1e-15)


def test_multilabel_accuracy_counts_rows_with_every_label_right():
    params, X, _, Y, _ = problem(9)
    logits = fnn.forward(params, X)
    _, acc = evaluate(params, X, Y)
    assert acc == np.mean(((logits > 0) == (Y > 0.5)).all(axis=1))


@pytest.mark.parametrize(
    "w, message",
    [
        (np.ones(3), "12 numbers, one per row"),
        (np.r_[np.ones(11), -1.0], "row 11"),
        (np.r_[np.ones(11), np.nan], "row 11"),
        (np.zeros(12), "all 0"),
    ],
)
def test_bad_weights_are_errors_naming_the_row(w, message):
    params, X, y, _, _ = problem(1)
    with pytest.raises(ValueError, match=message):
        fnn.loss(params, X, y, w=w)


def test_a_multilabel_y_of_other_values_or_widths_is_refused():
    params, X, _, Y, _ = problem(2)
    with pytest.raises(ValueError, match="0 and 1 only"):
        fnn.loss(params, X, Y * 2)
    with pytest.raises(ValueError, match="one column per output"):
        fnn.loss(params, X, Y[:, :3])


def test_fit_trains_weighted_and_multilabel_data_and_sparse_rows_match_dense():
    sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    X = (rng.random((200, 20)) < 0.2) * rng.random((200, 20))
    Y = np.stack([X[:, 0] > 0.1, X[:, 1] + X[:, 2] > 0.3, X[:, 3] < 0.05], axis=1).astype(np.float32)
    w = rng.random(200).astype(np.float32)
    params = fnn.init(np.random.default_rng(1), (20, 16, 3))
    common = dict(epochs=40, batch_size=32)
    dense = fnn.fit(np.random.default_rng(2), params, fnn.adam(0.01), (X, Y, w), (X, Y, w), **common)
    csr = fnn.fit(np.random.default_rng(2), params, fnn.adam(0.01), (sparse.csr_matrix(X), Y, w), **common)
    assert dense.history["train_loss"].iloc[-1] < 0.5 * dense.history["train_loss"].iloc[0]
    assert dense.history["dev_acc"].iloc[-1] > 0.8
    assert fnn.tree_allclose(dense.state.params, csr.state.params, rtol=1e-5, atol=1e-6)
