"""What the fast paths must never change: raveled buffers view the same numbers as the tree,
donated and pure steps give the same bits, pure steps never alias what they were given, and
cheap input screening still finds every non-finite input.
"""

from __future__ import annotations

from collections import namedtuple
from functools import partial

import attrs
import numpy as np
import pytest
import toolz

import fnn
from fnn.layers import Dropout, LeakyRelu
from fnn.optim import _flush_period, adam, apply_updates, chain, gd, scale_by_lr, sgd, trace
from fnn.training import Batch, batches, copy_state, evaluate, init_state, train_step
from fnn.tree import ravel, ravel_spec, tree_map, unravel


def leaves(tree) -> list[np.ndarray]:
    return [x for x in fnn.tree_leaves(tree) if isinstance(x, np.ndarray)]


def problem(seed=0, sizes=(20, 16, 3), m=32, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = fnn.init(rng, sizes, dtype=dtype)
    X = rng.standard_normal((m, sizes[0])).astype(dtype)
    return params, X, rng.integers(0, sizes[-1], m)


# ---------------------------------------------------------------- raveled trees


def test_ravel_and_unravel_round_trip_and_unravel_copies_nothing():
    params, _, _ = problem()
    spec = ravel_spec(params)
    flat = ravel(spec, params)
    assert flat.shape == (sum(x.size for x in leaves(params)),) and flat.dtype == np.float32
    tree = unravel(spec, flat)
    assert all(np.array_equal(a, b) for a, b in zip(leaves(tree), leaves(params)))
    assert all(np.shares_memory(x, flat) for x in leaves(tree))
    assert not any(np.shares_memory(x, flat) for x in leaves(params))  # ravel copies
    tree.layers[0].W[0, 0] = 7.0
    assert flat[0] == 7.0
    with pytest.raises(ValueError, match="hold"):
        unravel(spec, np.zeros(3, np.float32))


def test_unravel_rebuilds_every_kind_of_node():
    Pair = namedtuple("Pair", "a b")
    mixed = {"net": problem()[0], "extra": [Pair(np.zeros((2, 3)), np.zeros(1)), (np.zeros(4),)],
             "layers": (LeakyRelu(alpha=0.3), Dropout(rate=0.25))}
    mixed = tree_map(lambda x: x.astype(np.float64), mixed)
    spec = ravel_spec(mixed)
    built = unravel(spec, np.arange(spec.size, dtype=np.float64))
    assert type(built["extra"][0]) is Pair and type(built["extra"][1]) is tuple
    assert built["layers"][0].alpha == 0.3 and built["layers"][1].rate == 0.25
    assert [x.shape for x in leaves(built)] == [np.shape(x) for x in leaves(mixed)]
    assert np.array_equal(np.concatenate([x.ravel() for x in leaves(built)]), np.arange(spec.size))
    with pytest.raises(TypeError, match="one dtype"):
        ravel_spec({"a": np.ones(2, np.float32), "b": np.ones(2, np.float64)})


# ---------------------------------------------------------------- donation


OPTIMIZERS = [
    lambda: gd(0.1), lambda: sgd(0.1, 0.9), lambda: sgd(0.1, 0.9, nesterov=True), lambda: adam(1e-2),
    lambda: chain(trace(0.5), scale_by_lr(0.1)),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_donated_and_pure_updates_agree_bit_for_bit_and_pure_ones_touch_nothing(make):
    params, X, y = problem()
    opt = make()
    spec = ravel_spec(params)
    p_pure, p_don = ravel(spec, params), ravel(spec, params)
    s_pure, s_don = opt.init(p_pure), opt.init(p_don)
    for _ in range(3):
        g = ravel(spec, fnn.grads(unravel(spec, p_pure), X, y))
        before = [x.copy() for x in leaves((g, s_pure, p_pure))]
        u_pure, s_pure_new = opt.update(g, s_pure, p_pure)
        p_pure_new = apply_updates(p_pure, u_pure)
        assert all(np.array_equal(a, b) for a, b in zip(before, leaves((g, s_pure, p_pure))))
        u_don, s_don = opt.update(g.copy(), s_don, p_don, donate=True)
        p_don = apply_updates(p_don, u_don, donate=True)
        p_pure, s_pure = p_pure_new, s_pure_new
        assert np.array_equal(p_pure, p_don)
        assert all(np.array_equal(a, b) for a, b in zip(leaves(s_pure), leaves(s_don)))


def test_the_raveled_rule_equals_the_rule_leaf_by_leaf():
    params, X, y = problem()
    spec = ravel_spec(params)
    opt = adam(1e-2)
    g_tree = fnn.grads(params, X, y)
    u_tree, _ = opt.update(g_tree, opt.init(params), params)
    u_flat, _ = opt.update(ravel(spec, g_tree), opt.init(ravel(spec, params)), None)
    assert np.array_equal(ravel(spec, u_tree), u_flat)


def test_a_donated_fold_equals_the_pure_fold():
    params, X, y = problem(sizes=(30, 16, 10), m=200)
    for opt in (sgd(0.1, 0.9), adam(1e-2)):
        folds = [
            toolz.reduce(partial(train_step, optimizer=opt, l2=0.1, donate=donate),
                         batches(np.random.default_rng(1), X, y, 32, epochs=2), init_state(params, opt))
            for donate in (False, True)
        ]
        assert np.array_equal(folds[0].flat, folds[1].flat)
        assert all(np.array_equal(a, b) for a, b in zip(leaves(folds[0].opt_state), leaves(folds[1].opt_state)))


def test_a_donated_step_writes_into_the_state_it_was_given_and_copy_state_keeps_one():
    params, X, y = problem()
    opt = sgd(0.1, 0.9)
    state = init_state(params, opt)
    kept = copy_state(state)
    new = train_step(state, Batch(X, y, end=False), opt, donate=True)
    assert new.flat is state.flat and np.array_equal(kept.flat, ravel(ravel_spec(params), params))
    assert not np.array_equal(kept.flat, new.flat)


def test_every_state_of_a_pure_fold_stays_intact_while_later_steps_run():
    """Keep every state and batch of a run: none may share memory with another step's
    results, and each must still hold what it held when it was made."""
    params, X, y = problem(sizes=(300, 64, 10), m=600)
    opt = sgd(0.1, 0.9)
    state = init_state(params, opt)
    kept, snapshots = [], []
    for batch in batches(np.random.default_rng(1), X, y, 100, epochs=2):
        new = train_step(state, batch, opt)
        kept.append((batch, new))
        snapshots.append([a.copy() for a in leaves((batch.X, new.params, new.opt_state))])
        state = new
    for (batch, st), snap in zip(kept, snapshots):
        assert all(np.array_equal(a, b) for a, b in zip(leaves((batch.X, st.params, st.opt_state)), snap))
    arrays = [a for batch, st in kept for a in leaves((batch.X, st.params))]
    bases = {id(a.base if a.base is not None else a) for a in arrays}
    assert len(bases) == len(kept) * 2  # one batch buffer and one params buffer per step, all distinct


def test_the_same_fold_twice_in_one_process_gives_the_same_bits():
    params, X, y = problem(sizes=(300, 64, 10), m=600)

    def run():
        opt = adam(1e-2)
        step = partial(train_step, optimizer=opt)
        return toolz.reduce(step, batches(np.random.default_rng(2), X, y, 64, epochs=3), init_state(params, opt))

    a, b = run(), run()
    assert all(np.array_equal(p, q) for p, q in zip(leaves((a.params, a.opt_state)), leaves((b.params, b.opt_state))))


def test_train_step_results_never_alias_its_inputs():
    params, X, y = problem(sizes=(300, 64, 10), m=128)
    opt = sgd(0.1, 0.9)
    state = train_step(init_state(params, opt), Batch(X, y, end=False), opt)
    new = train_step(state, Batch(X, y, end=False), opt)
    for out in leaves((new.params, new.opt_state)):
        assert not any(np.shares_memory(out, old) for old in leaves((state.params, state.opt_state, X)))


# ---------------------------------------------------------------- subnormal flushing, amortised


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99, 0.999])
def test_flush_period_keeps_a_decaying_entry_far_above_tiny(decay):
    period = _flush_period(decay)
    assert period >= 1 and decay**period >= 2.0**-6 > decay ** (period + 1)


# ---------------------------------------------------------------- evaluate's input screening


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_evaluate_names_the_row_of_any_non_finite_input(bad, activation):
    rng = np.random.default_rng(0)
    params = fnn.init(rng, (6, 5, 3), activation=activation)
    # all first-layer weights of input 2 positive: -inf there sends every unit to -inf, which
    # ReLU (or tanh, sigmoid) would map to finite values: the logits alone would not tell
    W = params.layers[0].W.copy()
    W[2] = np.abs(W[2]) + 0.1
    params = attrs.evolve(params, layers=(attrs.evolve(params.layers[0], W=W), *params.layers[1:]))
    X, y = rng.standard_normal((50, 6)).astype(np.float32), rng.integers(0, 3, 50)
    X[37, 2] = bad
    with pytest.raises(ValueError, match="row 37"):
        evaluate(params, X, y, chunk=16)


def test_evaluate_with_non_finite_weights_still_returns_nan_rather_than_blaming_X():
    params, X, y = problem()
    W = params.layers[0].W.copy()
    W[0, 0] = np.nan
    params = attrs.evolve(params, layers=(attrs.evolve(params.layers[0], W=W), *params.layers[1:]))
    loss, _ = evaluate(params, X, y)
    assert np.isnan(loss)
