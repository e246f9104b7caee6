"""The batch stream, the fold's operator, evaluation, and fit's history, stops and guarantees.

Small synthetic problems (20 inputs, 3 classes) keep each fit to a few milliseconds.
"""

import itertools
import math
import re
from functools import partial

import numpy as np
import pandas as pd
import pytest
import toolz
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.nn import loss, predict
from fnn.optim import adam, gd, sgd
from fnn.params import init
from fnn.config import TrainConfig, make_optimizer, train
from fnn.fitting import fit, history_columns
from fnn.training import Batch, batches, epoch_indices, evaluate, init_state, steps_per_epoch, train_step
from fnn.tree import tree_leaves


def blobs(rng, sizes=(240, 90), n_in=20, k=3):
    """Train and dev draws from k Gaussian blobs in n_in dimensions: (X (n, n_in) float32, y (n,) int64)."""
    centers = rng.standard_normal((k, n_in)) * 2
    labels = [rng.integers(0, k, n) for n in sizes]
    return tuple(((centers[y] + rng.standard_normal((len(y), n_in))).astype(np.float32), y) for y in labels)


@pytest.fixture(scope="module")
def data():
    return blobs(np.random.default_rng(0))


def small_params(seed=1, sizes=(20, 16, 3)):
    return init(np.random.default_rng(seed), sizes)


# ---------------------------------------------------------------- the batch stream


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), batch_size=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_epoch_indices_cover_every_row_once(n, batch_size, seed):
    slices = list(epoch_indices(np.random.default_rng(seed), n, batch_size))
    assert np.array_equal(np.sort(np.concatenate(slices)), np.arange(n))
    assert len(slices) == steps_per_epoch(n, batch_size)
    assert all(len(s) == batch_size for s in slices[:-1])
    assert len(slices[-1]) == (n % batch_size or batch_size)


def test_stream_is_deterministic_per_seed_and_reshuffles_each_epoch():
    X = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)

    def orders(seed):
        return [b.y.tolist() for b in batches(np.random.default_rng(seed), X, y, 4, epochs=3)]

    first = orders(7)
    assert first == orders(7)
    assert first != orders(8)
    epochs = [sum(first[i : i + 3], []) for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1]  # a new permutation each epoch
    assert [len(b) for b in first[:3]] == [4, 4, 2]  # the last batch keeps the leftover rows


def test_stream_rows_match_their_labels_and_mark_epoch_ends():
    X = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10)
    stream = list(batches(np.random.default_rng(0), X, y, 3, epochs=2))
    assert len(stream) == 2 * steps_per_epoch(10, 3) == 8
    assert [b.end for b in stream] == [False, False, False, True] * 2
    assert all(np.array_equal(b.X, X[b.y]) for b in stream)


@pytest.mark.parametrize("size", [None, "full", 10, 50])
def test_full_batch_mode_yields_the_arrays_themselves(size):
    X, y = np.zeros((10, 3), np.float32), np.zeros(10, np.int64)
    stream = list(batches(np.random.default_rng(0), X, y, size, epochs=3))
    assert len(stream) == 3 and steps_per_epoch(10, size) == 1
    assert all(b.X is X and b.y is y and b.end for b in stream)


def test_stream_is_lazy():
    X, y = np.zeros((10**3, 2), np.float32), np.zeros(10**3, np.int64)
    first = next(iter(batches(np.random.default_rng(0), X, y, 5, epochs=10**9)))
    assert first.X.shape == (5, 2)


@pytest.mark.parametrize("skip", [0, 3, 7, 8, 13, 24])
def test_a_skipped_stream_is_the_rest_of_the_stream_and_gathers_nothing_it_skips(skip):
    """A resumed run's stream: batches(..., skip=k) is the full stream less its first k batches,
    and the rows of a skipped batch are never read (X here raises on any row outside the rest)."""
    X, y = np.arange(60, dtype=np.float32).reshape(30, 2), np.arange(30)
    full = list(batches(np.random.default_rng(4), X, y, 4, epochs=3))  # 8 batches an epoch
    rest = list(batches(np.random.default_rng(4), X, y, 4, epochs=3, skip=skip))
    assert len(rest) == len(full) - skip
    assert all(np.array_equal(a.X, b.X) and a.end == b.end for a, b in zip(rest, full[skip:]))

    class Watched(np.ndarray):
        def __array_function__(self, func, types, args, kwargs):
            taken.append(len(args[1]))
            return super().__array_function__(func, types, args, kwargs)

    taken = []
    list(batches(np.random.default_rng(4), X.view(Watched), y, 4, epochs=3, skip=skip))
    assert len(taken) == len(full) - skip  # one gather per batch that is yielded


@pytest.mark.parametrize("bad", [0, -1, 2.5, "half", True])
def test_bad_batch_size_is_named(bad):
    with pytest.raises(ValueError, match="batch_size"):
        steps_per_epoch(10, bad)


# ---------------------------------------------------------------- one step, the fold


@pytest.mark.parametrize("optimizer", [gd(0.1), sgd(0.1, 0.9), adam(1e-2)], ids=["gd", "sgd", "adam"])
def test_train_step_is_pure(data, optimizer):
    (X, y), _ = data
    state = init_state(small_params(), optimizer)
    batch = Batch(X[:32], y[:32], end=False)
    snapshot = [x.copy() for x in tree_leaves((state.params, state.opt_state, batch.X, batch.y)) if isinstance(x, np.ndarray)]
    new = train_step(state, batch, optimizer)
    leaves = [x for x in tree_leaves((state.params, state.opt_state, batch.X, batch.y)) if isinstance(x, np.ndarray)]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, leaves))
    assert (state.step, state.epoch, new.step, new.epoch) == (0, 0, 1, 0)
    assert train_step(new, Batch(X, y, end=True), optimizer).epoch == 1
    assert not np.array_equal(new.params.layers[0].W, state.params.layers[0].W)


def test_a_gd_step_lowers_the_batch_loss(data):
    (X, y), _ = data
    state = init_state(small_params(), gd(0.1))
    new = train_step(state, Batch(X, y, end=True), gd(0.1), l2=0.5)
    assert loss(new.params, X, y, l2=0.5) < loss(state.params, X, y, l2=0.5)


def test_fit_is_the_fold_of_train_step(data):
    """fit's parameters are exactly toolz.reduce(train_step, batches, state0) on fit's stream."""
    (X, y), _ = data
    params, opt = small_params(), sgd(0.05, 0.9)
    result = fit(np.random.default_rng(3), params, opt, (X, y), epochs=3, batch_size=32)
    stream_rng = np.random.default_rng(3).spawn(3)[0]
    folded = toolz.reduce(partial(train_step, optimizer=opt), batches(stream_rng, X, y, 32, 3), init_state(params, opt))
    assert all(np.array_equal(a, b) for a, b in zip(tree_leaves(result.state.params), tree_leaves(folded.params)))
    assert (result.state.step, result.state.epoch) == (folded.step, folded.epoch) == (24, 3)


# ---------------------------------------------------------------- evaluation


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunked_evaluate_matches_the_whole_set_loss(data, chunk):
    (X, y), _ = data
    params = small_params()
    value, acc = evaluate(params, X, y, l2=0.3, chunk=chunk)
    assert math.isclose(value, loss(params, X, y, l2=0.3), rel_tol=1e-5)
    assert acc == np.mean(predict(params, X) == y)


def test_evaluate_validates_its_inputs(data):
    (X, y), _ = data
    with pytest.raises(ValueError, match="shape"):
        evaluate(small_params(), X[:, :5], y)
    with pytest.raises(ValueError, match="chunk"):
        evaluate(small_params(), X, y, chunk=0)


# ---------------------------------------------------------------- fit


def test_history_columns_and_values_are_sensible(data):
    (X, y), dev = data
    rows = []
    result = fit(
        np.random.default_rng(0), small_params(), sgd(0.05, 0.9), (X, y), dev,
        epochs=4, batch_size=32, eval_every=5, callback=rows.append,
    )
    h = result.history
    assert list(h.columns) == history_columns(small_params()) == [
        "step", "epoch", "lr", "seconds", "batch_loss", "train_loss", "train_acc", "dev_loss", "dev_acc",
        "grad_norm_1", "grad_norm_2", "update_ratio_1", "update_ratio_2", "dead_frac_1",
    ]
    # 8 steps per epoch: rows every 5 steps and at each epoch's end
    assert h.step.tolist() == [5, 8, 10, 15, 16, 20, 24, 25, 30, 32]
    assert h.epoch.tolist() == [0, 1, 1, 1, 2, 2, 3, 3, 3, 4]
    assert (h.lr == 0.05).all()
    assert h.seconds.is_monotonic_increasing
    assert h[["train_acc", "dev_acc", "dead_frac_1"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (h.filter(like="grad_norm") > 0).all().all() and (h.filter(like="update_ratio") > 0).all().all()
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0] and h.train_acc.iloc[-1] > 0.9
    assert result.stopped == "completed" and "4 epochs" in result.message
    assert pd.DataFrame(rows, columns=h.columns).equals(h)  # the callback saw every row


def test_history_health_columns_measure_the_last_step(data):
    """With full-batch gd the last update is -lr·grad, so update_ratio = lr·||dW|| / ||W||."""
    (X, y), _ = data
    result = fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), epochs=3, batch_size=None)
    last = result.history.iloc[-1]
    W = result.state.params.layers[2].W
    assert math.isclose(last.update_ratio_2 / 0.1 * np.linalg.norm(W), last.grad_norm_2, rel_tol=0.2)
    assert result.history.step.tolist() == [1, 2, 3] and result.history.dev_acc.isna().all()


def test_batch_loss_is_the_loss_each_step_descended(data):
    """Full batch, no l2: step t descends J at the params of row t-1, so batch_loss[t] is row
    t-1's train_loss (all rows are the train subset); with mini-batches it is the rows-weighted
    mean of the steps' losses since the last row."""
    (X, y), _ = data
    full = fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), epochs=4, batch_size=None).history
    np.testing.assert_allclose(full.batch_loss.iloc[1:].to_numpy(), full.train_loss.iloc[:-1].to_numpy(), rtol=1e-5)
    opt = sgd(0.05, 0.9)
    per_epoch = fit(np.random.default_rng(0), small_params(), opt, (X, y), epochs=1, batch_size=100).history
    per_step = fit(np.random.default_rng(0), small_params(), opt, (X, y), epochs=1, batch_size=100, eval_every=1).history
    rows = [min(100, len(y) - s) for s in range(0, len(y), 100)]  # the last batch is smaller
    assert len(per_step) == len(rows) > 1
    assert per_epoch.batch_loss.iloc[0] == pytest.approx(np.dot(per_step.batch_loss, rows) / len(y), rel=1e-12)


def test_seconds_come_from_the_clock_and_exclude_evaluation(data):
    (X, y), _ = data
    ticks = itertools.count()  # every clock() call is one "second" later
    result = fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), epochs=3, batch_size=None, clock=lambda: next(ticks))
    # start=0; each evaluation reads the clock on entry and exit, which is 1 tick of evaluation
    assert result.history.seconds.tolist() == [1, 2, 3]


def test_same_seed_same_bits(data):
    (X, y), dev = data

    def run():
        return fit(np.random.default_rng(11), small_params(), adam(1e-2), (X, y), dev, epochs=3, batch_size=50, eval_every=2)

    a, b = run(), run()
    assert all(np.array_equal(p, q) for p, q in zip(tree_leaves(a.state.params), tree_leaves(b.state.params)))
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    c = fit(np.random.default_rng(12), small_params(), adam(1e-2), (X, y), dev, epochs=3, batch_size=50)
    assert not np.array_equal(a.state.params.layers[0].W, c.state.params.layers[0].W)


def test_train_columns_use_a_fixed_subset_when_asked(data):
    (X, y), _ = data
    result = fit(np.random.default_rng(0), small_params(), sgd(0.05, 0.9), (X, y), epochs=3, batch_size=32, train_eval_size=50)
    assert (result.history.train_acc * 50).round(9).apply(float.is_integer).all()  # a count out of 50 rows
    full = fit(np.random.default_rng(0), small_params(), sgd(0.05, 0.9), (X, y), epochs=3, batch_size=32)
    assert full.history.train_acc.iloc[-1] == evaluate(full.state.params, X, y)[1]
    assert np.array_equal(full.state.params.layers[0].W, result.state.params.layers[0].W)  # evaluation never perturbs training


def test_float32_is_kept_through_a_fit(data):
    (X, y), dev = data
    result = fit(np.random.default_rng(0), small_params(), adam(1e-2), (X.astype(np.float64), y), dev, epochs=2)
    assert all(x.dtype == np.float32 for x in tree_leaves(result.state.params))
    assert all(x.dtype == np.float32 for x in tree_leaves(result.state.opt_state) if isinstance(x, np.ndarray))


def test_early_stopping_keeps_the_best_params(data):
    """Dev labels that disagree with the training labels: dev accuracy falls as training fits."""
    (X, y), _ = data
    dev = (X[:120], (y[:120] + 1) % 3)
    result = fit(np.random.default_rng(0), small_params(), sgd(0.05, 0.9), (X, y), dev, epochs=50, batch_size=32, patience=3)
    h = result.history
    best = int(h.dev_acc.idxmax())
    assert result.stopped == "early_stop" and "dev_acc" in result.message
    assert len(h) == best + 3 + 1  # stopped after 3 evaluations without improvement
    assert evaluate(result.best_params, *dev) == pytest.approx((h.dev_loss[best], h.dev_acc[best]), rel=1e-5)
    assert evaluate(result.state.params, *dev)[1] == h.dev_acc.iloc[-1]


def test_early_stopping_on_dev_loss(data):
    (X, y), _ = data
    dev = (X[:120], (y[:120] + 1) % 3)
    result = fit(
        np.random.default_rng(0), small_params(), sgd(0.05, 0.9), (X, y), dev,
        epochs=50, batch_size=32, patience=2, monitor="dev_loss",
    )
    best = int(result.history.dev_loss.idxmin())
    assert result.stopped == "early_stop" and len(result.history) == best + 3
    assert evaluate(result.best_params, *dev)[0] == pytest.approx(result.history.dev_loss[best], rel=1e-5)


def test_divergence_stops_with_the_step_and_lr_named(data):
    (X, y), dev = data
    result = fit(np.random.default_rng(0), small_params(), gd(1e30), (X, y), dev, epochs=5, batch_size=32)
    assert result.stopped == "diverged"
    assert "step" in result.message and "1e+30" in result.message
    assert all(np.isfinite(x).all() for x in tree_leaves(result.state.params))
    assert all(np.isfinite(x).all() for x in tree_leaves(result.best_params))
    assert np.isfinite(loss(result.state.params, X, y))
    assert result.state.step < 5 * steps_per_epoch(240, 32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=2, patience=2, dev=None), "patience"),
        (dict(epochs=2, monitor="train_acc"), "monitor"),
        (dict(epochs=2, eval_every=0), "eval_every"),
        (dict(epochs=2, l2=-1.0), "l2"),
    ],
)
def test_bad_fit_arguments_are_named(data, kwargs, match):
    (X, y), dev = data
    kwargs = {"dev": dev, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), **kwargs)


def test_fit_validates_the_data_once_up_front(data):
    (X, y), dev = data
    X_bad = X.copy()
    X_bad[17, 3] = np.nan
    with pytest.raises(ValueError, match="row 17"):
        fit(np.random.default_rng(0), small_params(), gd(0.1), (X_bad, y), dev, epochs=1)
    with pytest.raises(TypeError, match="train"):
        fit(np.random.default_rng(0), small_params(), gd(0.1), X, dev, epochs=1)


# ---------------------------------------------------------------- config and train


def test_train_config_validates_its_scalars():
    assert TrainConfig(hidden=[64, 32]).hidden == (64, 32)
    for bad, match in [
        (dict(lr=0), "lr"), (dict(momentum=1.0), "momentum"), (dict(optimizer="rmsprop"), "optimizer"),
        (dict(schedule="linear"), "schedule"), (dict(batch_size=0), "batch_size"), (dict(hidden=(0,)), "hidden"),
        (dict(patience=0), "patience"), (dict(epochs=1.5), "epochs"), (dict(monitor="acc"), "monitor"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad)


def test_make_optimizer_follows_the_schedule():
    steps = 10
    cos = make_optimizer(TrainConfig(epochs=4, lr=0.2, schedule="cosine"), steps)
    assert cos.schedule(0) == 0.2 and math.isclose(cos.schedule(20), 0.1) and cos.schedule(40) == 0.0
    step = make_optimizer(TrainConfig(epochs=3, lr=0.2, schedule="step", optimizer="adam"), steps)
    assert [step.schedule(t) for t in (0, 9, 10, 20)] == pytest.approx([0.2, 0.2, 0.02, 0.002])
    assert make_optimizer(TrainConfig(schedule="constant", optimizer="gd", lr=0.5), steps).schedule(99) == 0.5


def test_train_runs_a_config_end_to_end(data):
    (X, y), dev = data
    config = TrainConfig(hidden=(8, 8), epochs=10, batch_size=40, lr=0.1, l2=0.1, patience=5)
    result = train(np.random.default_rng(0), config, (X, y), dev)
    assert [layer.W.shape for layer in result.state.params.layers if hasattr(layer, 'W')] == [(20, 8), (8, 8), (8, 3)]
    assert "dead_frac_2" in result.history and "dead_frac_3" not in result.history
    assert result.history.dev_acc.max() > 0.8
    ticks = itertools.count()
    again = train(np.random.default_rng(0), config, (X, y), dev, clock=lambda: next(ticks))
    assert np.array_equal(again.best_params.layers[0].W, result.best_params.layers[0].W)
    assert again.history.seconds.tolist() == list(range(1, len(again.history) + 1))


def test_divergence_message_names_the_update_that_broke_the_params(data):
    # a schedule that is gentle for 5 updates, then explodes: the message must name the step
    # whose loss is non-finite, the lr of the update that produced it, and the step before
    (X, y), dev = data
    schedule = lambda t: 1e-3 if t < 5 else 1e38  # noqa: E731
    result = fit(np.random.default_rng(0), small_params(), gd(schedule), (X, y), dev, epochs=5, batch_size=32)
    assert result.stopped == "diverged"
    found = re.search(r"at step (\d+) .*learning rate (\S+)$", result.message)
    assert found, result.message
    step, lr = int(found[1]), float(found[2])
    # the parameters kept: the last evaluated (none before this step: the initial ones)
    assert result.state.step == (int(result.history.step.iloc[-1]) if len(result.history) else 0) < step
    assert np.isfinite(loss(result.state.params, X, y))
    assert lr == schedule(step - 1)


def test_eval_every_is_honoured_in_full_batch_training(data):
    """The seed printed accuracy every 10 iterations of full-batch gd: eval_every decides there,
    and the last update always has a row."""
    (X, y), dev = data
    result = fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), dev, epochs=25, batch_size=None, eval_every=10)
    assert result.history.step.tolist() == [10, 20, 25]
    every = fit(np.random.default_rng(0), small_params(), gd(0.1), (X, y), dev, epochs=3, batch_size=None)
    assert every.history.step.tolist() == [1, 2, 3]  # without eval_every: each epoch (= update)


def test_an_exploding_but_finite_loss_is_divergence_too(data):
    """Full-batch gd at a huge lr: the loss stays finite for a while but explodes; fit must say
    diverged, never completed, and keep the parameters of the last sane evaluation."""
    (X, y), dev = data
    result = fit(np.random.default_rng(0), small_params(), gd(50.0), (X, y), dev, epochs=20, batch_size=None)
    assert result.stopped == "diverged", result.message
    assert np.isfinite(loss(result.state.params, X, y))
    assert result.history.train_loss.max() <= 10 * max(result.history.train_loss.iloc[0], 1.0)
