"""What the fast paths must never change: results are new arrays nobody else can see into,
raveled and leaf-by-leaf arithmetic agree, recycled buffers are only ever ones nothing
references, and cheap input screening still finds every non-finite input.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from functools import partial

import attrs
import numpy as np
import pytest
import toolz

import fnn
from fnn import tree as tree_module
from fnn.layers import Dropout, LeakyRelu
from fnn.optim import _flush_period, adam, apply_updates, gd, sgd
from fnn.train import Batch, batches, evaluate, init_state, train_step
from fnn.tree import new_buffer, tree_map, tree_map_raveled, tree_ravel, tree_unravel, tree_zeros_like


def leaves(tree) -> list[np.ndarray]:
    return [x for x in fnn.tree_leaves(tree) if isinstance(x, np.ndarray)]


def copied(tree):
    """The tree with each array leaf copied (so no longer raveled); counts stay ints."""
    return tree_map(lambda x: x.copy() if isinstance(x, np.ndarray) else x, tree)


def problem(seed=0, sizes=(20, 16, 3), m=32, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = fnn.init(rng, sizes, dtype=dtype)
    X = rng.standard_normal((m, sizes[0])).astype(dtype)
    return params, X, rng.integers(0, sizes[-1], m)


# ---------------------------------------------------------------- raveled trees


def test_ravel_and_unravel_round_trip_without_copies():
    params, _, _ = problem()
    flat = np.arange(sum(x.size for x in leaves(params)), dtype=np.float32)
    tree = tree_unravel(params, flat)
    assert tree_ravel(tree) is flat
    assert [x.shape for x in leaves(tree)] == [x.shape for x in leaves(params)]
    assert tree_ravel(params) is None  # init's leaves are separate arrays
    assert tree_ravel(copied(tree)) is None
    assert tree_ravel(tree_zeros_like(params)) is not None


def test_unravel_rebuilds_every_kind_of_node_the_same_way_the_first_time_and_after():
    """tree_unravel walks a structure once and then reuses its plan for the records it built:
    records with static fields, leafless records, tuples, named tuples, lists and dicts must
    come back the same either way."""
    Pair = namedtuple("Pair", "a b")
    params, _, _ = problem()
    mixed = {"net": params, "extra": [Pair(np.zeros((2, 3)), np.zeros(1)), (np.zeros(4),)],
             "layers": (LeakyRelu(alpha=0.3), Dropout(rate=0.25))}
    n_mixed, n_params = (sum(x.size for x in leaves(t)) for t in (mixed, params))
    first = tree_unravel(mixed, np.arange(n_mixed, dtype=np.float64))
    assert type(first["extra"][0]) is Pair and type(first["extra"][1]) is tuple
    assert first["layers"][0].alpha == 0.3 and first["layers"][1].rate == 0.25
    assert [x.shape for x in leaves(first)] == [np.shape(x) for x in leaves(mixed)]
    assert np.array_equal(np.concatenate([x.ravel() for x in leaves(first)]), np.arange(n_mixed))
    built = tree_unravel(params, np.zeros(n_params, np.float32))  # walks params
    for _ in range(2):  # planned: built by tree_unravel, then its own result
        built = tree_unravel(built, np.arange(n_params, dtype=np.float32))
        assert type(built) is type(params) and [type(x) for x in built.layers] == [type(x) for x in params.layers]
        assert [x.shape for x in leaves(built)] == [x.shape for x in leaves(params)]
        assert np.array_equal(np.concatenate([x.ravel() for x in leaves(built)]), np.arange(n_params))
    with pytest.raises(ValueError, match="hold"):
        tree_unravel(built, np.zeros(3))  # planned or not, a buffer of the wrong size is refused


def test_backward_grads_reuse_the_params_plan_only_when_built_like_them():
    """The grads of an all-Dense network are built node for node like its params, so they share
    the params' unravel plan (no walk per step); a layer whose gradient is some other record
    must not inherit it."""
    params, X, y = problem()
    params = tree_unravel(params, np.concatenate([x.ravel() for x in leaves(params)]))  # planned
    grads = fnn.grads(params, X, y)
    assert tree_module._plans.get(grads) is tree_module._plans.get(params) is not None
    u = tree_map_raveled(lambda g, out: np.negative(g, out=out), grads)
    assert [type(x) for x in u.layers] == [type(x) for x in params.layers]

    @attrs.frozen(eq=False)
    class Scaled:  # a parameter-less layer whose gradient is a fresh record, not itself
        def forward(self, A, rng):
            return A * 2, None

        def backward(self, cache, dZ):
            return Scaled(), dZ * 2

    odd = attrs.evolve(params, layers=(params.layers[0], Scaled(), *params.layers[1:]))
    odd = tree_unravel(odd, np.concatenate([x.ravel() for x in leaves(odd)]))  # planned
    odd_grads = fnn.grads(odd, X, y)
    assert tree_ravel(odd_grads) is not None and tree_module._plans.get(odd) is not None
    assert tree_module._plans.get(odd_grads) is None


def test_tree_map_raveled_matches_tree_map_and_keeps_the_structure():
    params, X, y = problem()
    grads = fnn.grads(params, X, y)
    assert tree_ravel(grads) is not None  # backward writes the grads into one buffer
    flat = tree_map_raveled(lambda g, p, out: np.subtract(g, p, out=out), grads, tree_zeros_like(params))
    leafwise = tree_map(lambda g, p: g - p, grads, tree_zeros_like(params))
    assert type(flat) is type(params) and tree_ravel(flat) is not None
    assert all(np.array_equal(a, b) for a, b in zip(leaves(flat), leaves(leafwise)))
    mixed = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float64)}  # no single buffer: leaf by leaf
    out = tree_map_raveled(lambda x, out: np.multiply(x, 2, out=out), mixed)
    assert out["a"].dtype == np.float32 and out["b"].dtype == np.float64 and out["b"][0] == 2


@pytest.mark.parametrize("make", [lambda: gd(0.1), lambda: sgd(0.1, 0.9), lambda: sgd(0.1, 0.9, nesterov=True), lambda: adam(1e-2)])
def test_raveled_and_leaf_by_leaf_updates_agree_bit_for_bit(make):
    params, X, y = problem()
    grads = fnn.grads(params, X, y)
    loose = copied(grads)  # the same numbers, one array per leaf
    opt = make()
    state_a, state_b, p_a, p_b = opt.init(params), opt.init(params), params, params
    for _ in range(3):
        u_a, state_a = opt.update(grads, state_a, p_a)
        u_b, state_b = opt.update(loose, copied(state_b), p_b)
        p_a, p_b = apply_updates(p_a, u_a), apply_updates(copied(p_b), copied(u_b))
    assert tree_ravel(p_a) is not None
    assert all(np.array_equal(a, b) for a, b in zip(leaves((p_a, state_a)), leaves((p_b, state_b))))


# ---------------------------------------------------------------- recycled buffers


def test_a_buffer_anything_references_is_never_handed_out_again():
    size = 1 << 16  # large enough to be kept
    first = new_buffer(size, np.float32)
    view = first[10:20].reshape(2, 5)
    del first
    second = new_buffer(size, np.float32)
    assert not np.shares_memory(second, view)
    address = second.__array_interface__["data"][0]
    del second
    third = new_buffer(size, np.float32)  # nothing holds the second one any more: it comes back
    assert third.__array_interface__["data"][0] == address


@pytest.mark.parametrize("held", [3, 12])
def test_a_step_of_nine_buffers_is_served_from_the_pool_while_older_results_are_held(held):
    """An Adam step has nine buffers of the model's size in flight (old params and moments,
    grads, new moments, direction, scaled updates, new params) while a caller such as `fit`
    holds older results (its last good state, its best params). From the second step on,
    every buffer must be a recycled one. When the pool kept eight and never let go of held
    buffers, an Adam epoch of 784-512-10 that held one old state faulted in 271,000 fresh pages
    (1.6x the SGD epoch instead of 1.2x)."""
    size = (1 << 16) + 7  # a size no other test uses: this thread's pool for it starts empty
    kept = [new_buffer(size, np.float32) for _ in range(held)]
    step = [new_buffer(size, np.float32) for _ in range(9)]
    served = [weakref.ref(b) for b in step]
    del step  # the step's results are dropped
    for _ in range(3):
        step = [new_buffer(size, np.float32) for _ in range(9)]
        assert {id(b) for b in step} == {id(r()) for r in served if r() is not None}
        assert all(not np.shares_memory(b, k) for b in step for k in kept)
        served = [weakref.ref(b) for b in step]
        del step


def test_the_buffer_freed_last_is_handed_out_first():
    """Of the free kept buffers, the one most recently handed out comes back (likeliest still
    in cache): cycling through all sixteen put a 784-128-10 SGD step's results in cold memory."""
    size = (1 << 16) + 11  # a size no other test uses
    a, b, c = (new_buffer(size, np.float32) for _ in range(3))
    ids = [id(a), id(b), id(c)]
    del a, b, c
    assert id(new_buffer(size, np.float32)) == ids[2]


def test_every_state_of_a_fold_stays_intact_while_later_steps_run():
    """Keep every state, step output and batch of a run: none may share memory with another
    step's results, and each must still hold what it held when it was made."""
    params, X, y = problem(sizes=(300, 64, 10), m=600)  # 300·64 floats: kept buffers in play
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
