"""Optimizers against steps computed by hand, schedules at chosen steps, purity and dtypes.

The expected numbers are written out literally (worked on paper from the update rules in
fnn/optim.py's docstrings), never recomputed with the code under test.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.optim import (
    adam,
    apply_updates,
    chain,
    constant,
    cosine,
    gd,
    scale_by_adam,
    scale_by_lr,
    sgd,
    step_decay,
    trace,
)
from fnn.params import init
from fnn.tree import tree_allclose, tree_leaves, tree_map

G1 = {"w": np.array([1.0, -2.0]), "b": np.array([0.0])}
G2 = {"w": np.array([0.5, 0.5]), "b": np.array([1.0])}
PARAMS = {"w": np.array([1.0, 1.0]), "b": np.array([0.0])}


def run(optimizer, grads_seq, params=PARAMS):
    """The updates of successive steps, the final state and the final params."""
    state = optimizer.init(params)
    updates_seq = []
    for g in grads_seq:
        updates, state = optimizer.update(g, state, params)
        params = apply_updates(params, updates)
        updates_seq.append(updates)
    return updates_seq, state, params


def test_gd_is_minus_lr_times_grad():
    (u1, u2), _, params = run(gd(0.1), [G1, G2])
    np.testing.assert_allclose(u1["w"], [-0.1, 0.2])
    np.testing.assert_allclose(u2["b"], [-0.1])
    # 1 - 0.1·1 - 0.1·0.5 = 0.85 ; 1 + 0.2 - 0.05 = 1.15
    np.testing.assert_allclose(params["w"], [0.85, 1.15])


def test_sgd_momentum_two_steps():
    # v1 = g1 = [1, -2]            u1 = -0.1 v1 = [-0.1, 0.2]
    # v2 = 0.9 v1 + g2 = [1.4, -1.3]  u2 = [-0.14, 0.13]
    (u1, u2), state, _ = run(sgd(0.1, momentum=0.9), [G1, G2])
    np.testing.assert_allclose(u1["w"], [-0.1, 0.2])
    np.testing.assert_allclose(u2["w"], [-0.14, 0.13])
    np.testing.assert_allclose(u2["b"], [-0.1])  # v_b = 0.9·0 + 1
    velocity = state[0].velocity
    np.testing.assert_allclose(velocity["w"], [1.4, -1.3])


def test_sgd_nesterov_two_steps():
    # u1 = -0.1 (g1 + 0.9 v1) = -0.1 · 1.9 · [1, -2] = [-0.19, 0.38]
    # u2 = -0.1 (g2 + 0.9 v2) = -0.1 ([0.5, 0.5] + [1.26, -1.17]) = [-0.176, 0.067]
    (u1, u2), _, _ = run(sgd(0.1, momentum=0.9, nesterov=True), [G1, G2])
    np.testing.assert_allclose(u1["w"], [-0.19, 0.38])
    np.testing.assert_allclose(u2["w"], [-0.176, 0.067])


def test_adam_bias_corrected_two_steps():
    # step 1: m̂ = g1, v̂ = g1², so u1 = -0.1 g1/|g1| = [-0.1, 0.1] (less eps)
    # step 2: m = [0.14, -0.13], v = [0.001249, 0.004246], m̂ = m/0.19, v̂ = v/0.001999
    #         u2 = -0.1 m̂ / sqrt(v̂) = [-0.0932179627, 0.0469468168]
    (u1, u2), state, _ = run(adam(0.1), [G1, G2])
    np.testing.assert_allclose(u1["w"], [-0.1, 0.1], rtol=1e-7)
    np.testing.assert_allclose(u2["w"], [-0.0932179627, 0.0469468168], rtol=1e-8)
    adam_state, lr_state = state
    assert adam_state.count == 2 and lr_state.count == 2
    # the state holds the sums M = m / (1 - b1), V = v / (1 - b2)
    np.testing.assert_allclose(adam_state.mu["w"], [1.4, -1.3])
    np.testing.assert_allclose(adam_state.nu["w"], [1.249, 4.246])


def test_chain_of_trace_and_scale_is_sgd():
    chained = run(chain(trace(0.9), scale_by_lr(0.1)), [G1, G2, G1])[2]
    direct = run(sgd(0.1, 0.9), [G1, G2, G1])[2]
    assert tree_allclose(chained, direct, rtol=0, atol=0)


def test_adam_is_the_chain_of_its_direction_and_the_learning_rate():
    """adam folds -lr_t into its direction's scalar: the same state, and the chain's updates to
    rounding (lr_t multiplies one scalar instead of every entry), under a schedule too."""
    halving = step_decay(0.1, every=1, factor=0.5)
    grads = [G1, G2, G1, G2]
    for lr in (0.1, halving):
        u_fused, s_fused, p_fused = run(adam(lr), grads)
        u_chain, s_chain, p_chain = run(chain(scale_by_adam(), scale_by_lr(lr)), grads)
        assert [type(x) for x in s_fused] == [type(x) for x in s_chain]
        assert s_fused[0].count == s_chain[0].count == 4 and s_fused[1].count == s_chain[1].count == 4
        assert tree_allclose(s_fused[0].mu, s_chain[0].mu, rtol=0) and tree_allclose(s_fused[0].nu, s_chain[0].nu, rtol=0)
        assert all(tree_allclose(a, b, rtol=1e-15) for a, b in zip(u_fused, u_chain))
        assert tree_allclose(p_fused, p_chain, rtol=1e-15)
    assert not tree_allclose(run(adam(halving), grads)[0][-1], run(adam(0.1), grads)[0][-1])


def test_schedule_drives_the_step_size():
    halving = step_decay(1.0, every=1, factor=0.5)
    (u1, u2), _, _ = run(gd(halving), [G1, G1])
    np.testing.assert_allclose(u1["w"], [-1.0, 2.0])
    np.testing.assert_allclose(u2["w"], [-0.5, 1.0])
    assert gd(halving).schedule(2) == 0.25
    assert sgd(halving, 0.9).schedule(1) == 0.5 and adam(halving).schedule(0) == 1.0


def test_schedules_at_chosen_steps():
    assert constant(0.1)(0) == constant(0.1)(10_000) == 0.1
    decay = step_decay(1.0, every=10, factor=0.5)
    assert [decay(t) for t in (0, 9, 10, 19, 25)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    cos = cosine(1.0, total=100)
    assert cos(0) == 1.0
    assert math.isclose(cos(25), 0.8535533905932737)  # (1 + cos(π/4)) / 2
    assert math.isclose(cos(50), 0.5)
    assert cos(100) == 0.0 and cos(150) == 0.0
    assert math.isclose(cosine(1.0, total=100, final=0.1)(50), 0.55)
    assert all(type(s(3)) is float for s in (constant(0.1), decay, cos))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gd(-0.1), "lr"),
        (lambda: gd(float("nan")), "lr"),
        (lambda: sgd(0.1, momentum=1.0), "momentum"),
        (lambda: adam(b2=1.5), "b2"),
        (lambda: adam(eps=0.0), "eps"),
        (lambda: step_decay(0.1, every=0), "every"),
        (lambda: cosine(0.1, total=10, final=0.5), "final"),
        (lambda: chain(), "chain"),
    ],
)
def test_bad_hyper_parameters_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize(
    "optimizer", [gd(0.1), sgd(0.1, 0.9), sgd(0.1, 0.9, nesterov=True), adam(1e-3)], ids=["gd", "sgd", "nesterov", "adam"]
)
def test_updates_are_pure_and_keep_float32(optimizer):
    rng = np.random.default_rng(0)
    params = init(rng, (6, 5, 3))
    grads = tree_map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params)
    state = optimizer.init(params)
    before = [leaf.copy() for leaf in tree_leaves((params, grads, state)) if isinstance(leaf, np.ndarray)]
    for _ in range(3):
        updates, new_state = optimizer.update(grads, state, params)
    after = [leaf for leaf in tree_leaves((params, grads, state)) if isinstance(leaf, np.ndarray)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    new_params = apply_updates(params, updates)
    arrays = [x for x in tree_leaves((updates, new_state, new_params)) if isinstance(x, np.ndarray)]
    assert arrays and all(x.dtype == np.float32 for x in arrays)
    assert type(new_params) is type(params)


def test_apply_updates_casts_back_to_the_param_dtype():
    params = {"w": np.ones(3, np.float32)}
    out = apply_updates(params, {"w": np.full(3, 0.25, np.float64)})
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], [1.25, 1.25, 1.25])
    assert params["w"][0] == 1.0


@settings(max_examples=25, deadline=None)
@given(
    lr=st.floats(1e-4, 1.0),
    momentum=st.floats(0.0, 0.99),
    g=st.lists(st.floats(-10, 10), min_size=1, max_size=4),
)
def test_one_momentum_step_from_rest_is_a_gd_step(lr, momentum, g):
    """From v_0 = 0 the first heavy-ball step is exactly -lr·g, whatever the momentum."""
    grads = {"w": np.array(g)}
    (u,), _, _ = run(sgd(lr, momentum), [grads], params={"w": np.zeros(len(g))})
    np.testing.assert_allclose(u["w"], -lr * np.array(g))
