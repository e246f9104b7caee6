"""fnn.tune: grid points, per-point seeds, executor-independent results, a test split never read,
and deterministic choice of the best configuration."""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import attrs
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.data import Splits, load_dataset, split
from fnn.config import TrainConfig, train
from fnn.train import evaluate
from fnn.tune import (
    RESULT_COLUMNS,
    best_config,
    best_row,
    grid_points,
    grid_search,
    point_seeds,
)

BASE = TrainConfig(epochs=2, batch_size=64, hidden=(8,))
GRID = {"hidden": [(4,), (8,)], "l2": [0.0, 0.5]}


@pytest.fixture(scope="module")
def splits() -> Splits:
    """600 sample digits: 400 train / 100 dev / 100 test, enough for tiny networks to differ."""
    sample = load_dataset("sample")
    rows = np.random.default_rng(1).choice(len(sample.X), size=600, replace=False)
    small = attrs.evolve(sample, X=sample.X[rows], y=sample.y[rows])
    return split(small, np.random.default_rng(2), dev=100, test=100, stratify=True)


@pytest.fixture(scope="module")
def serial(splits) -> pd.DataFrame:
    return grid_search(7, GRID, splits, base=BASE)


def scores(results: pd.DataFrame) -> pd.DataFrame:
    """Everything but the timing column, which is the one thing allowed to differ."""
    return results.drop(columns="seconds")


# ---------------------------------------------------------------- the grid and its seeds


def test_grid_points_are_the_product_last_key_fastest():
    points = grid_points({"hidden": [(4,), (8,)], "l2": [0.0, 0.1, 1.0]})
    assert points == [{"hidden": h, "l2": l2} for h in [(4,), (8,)] for l2 in [0.0, 0.1, 1.0]]


@pytest.mark.parametrize(
    "grid, named",
    [({}, "grid is empty"), ({"width": [1]}, "'width'"), ({"l2": []}, "'l2'"), ({"seed": [1, 2]}, "'seed'")],
)
def test_bad_grids_are_rejected_by_name(grid, named):
    with pytest.raises(ValueError, match=named):
        grid_points(grid)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), extra=st.integers(1, 5))
def test_a_point_seed_depends_on_the_master_seed_and_its_position_only(seed, n, extra):
    seeds = point_seeds(seed, n)
    assert point_seeds(seed, n + extra)[:n] == seeds  # a bigger grid keeps the earlier seeds
    assert len(set(seeds)) == n
    assert point_seeds(seed + 1, n) != seeds
    assert point_seeds(np.random.SeedSequence(seed), n) == seeds  # a fresh sequence is the int's
    assert point_seeds(np.random.default_rng(seed), n) == point_seeds(np.random.default_rng(seed), n)


# ---------------------------------------------------------------- the search


def test_results_table_has_one_row_per_point_in_grid_order(serial):
    assert list(serial.columns) == ["hidden", "l2", *RESULT_COLUMNS]
    assert [(h, l2) for h, l2 in zip(serial["hidden"], serial["l2"])] == [
        (p["hidden"], p["l2"]) for p in grid_points(GRID)
    ]
    assert serial["seed"].tolist() == point_seeds(7, 4)
    assert (serial["epochs_run"] == BASE.epochs).all() and (serial["stopped"] == "completed").all()
    assert serial["dev_acc"].between(0, 1).all()
    assert serial["dev_acc"].nunique() > 1  # the points really trained different networks


class ReversedExecutor(Executor):
    """Holds the tasks until the n-th is submitted, then runs them all in reverse order: a worst
    case for code that ties seeds or rows to the order in which work is submitted or done."""

    def __init__(self, n: int):
        self.n, self.pending = n, []

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        self.pending.append((future, fn, args, kwargs))
        if len(self.pending) == self.n:
            for waiting, f, a, k in reversed(self.pending):
                waiting.set_result(f(*a, **k))
        return future


def test_any_executor_gives_the_serial_table(splits, serial):
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = grid_search(7, GRID, splits, base=BASE, executor=pool)
    pd.testing.assert_frame_equal(scores(threaded), scores(serial))


def test_execution_order_does_not_matter(splits, serial):
    finished = []
    reordered = grid_search(
        7, GRID, splits, base=BASE, executor=ReversedExecutor(4), on_result=lambda row: finished.append(row["hidden"])
    )
    pd.testing.assert_frame_equal(scores(reordered), scores(serial))
    assert sorted(finished) == sorted(p["hidden"] for p in grid_points(GRID))


def test_the_search_never_reads_the_test_split(splits, serial):
    n = len(splits.test.X)
    poisoned = attrs.evolve(splits.test, X=np.full((n, 784), np.nan, dtype=np.float32), y=np.full(n, 99))
    results = grid_search(7, GRID, attrs.evolve(splits, test=poisoned), base=BASE)
    pd.testing.assert_frame_equal(scores(results), scores(serial))

    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the search read test.{name}")

    grid_search(7, {"l2": [0.0]}, attrs.evolve(splits, test=Untouchable()), base=BASE)


def test_a_diverging_point_scores_nan_and_is_never_best(splits):
    results = grid_search(0, {"lr": [0.05, 1e30]}, splits, base=attrs.evolve(BASE, schedule="constant"))
    assert results["stopped"].tolist()[1] == "diverged"
    assert math.isnan(results["dev_acc"][1]) and math.isnan(results["dev_loss"][1])
    assert best_config(results, BASE).lr == 0.05


def test_the_search_needs_a_dev_split(splits):
    empty = attrs.evolve(splits.dev, X=splits.dev.X[:0], y=splits.dev.y[:0])
    with pytest.raises(ValueError, match="dev"):
        grid_search(0, GRID, attrs.evolve(splits, dev=empty), base=BASE)


# ---------------------------------------------------------------- choosing the best


def table(dev_acc, dev_loss) -> pd.DataFrame:
    n = len(dev_acc)
    return pd.DataFrame(
        {
            "hidden": [(10 * (i + 1),) for i in range(n)],
            "l2": [0.1 * i for i in range(n)],
            "seed": list(range(100, 100 + n)),
            "dev_acc": dev_acc,
            "dev_loss": dev_loss,
            "seconds": [1.0] * n,
            "epochs_run": [2] * n,
            "stopped": ["completed"] * n,
        }
    )


def test_best_row_breaks_ties_by_loss_then_by_grid_order():
    assert best_row(table([0.9, 0.95, 0.95], [0.3, 0.2, 0.1])).name == 2  # tie on accuracy: lower loss
    assert best_row(table([0.95, 0.9, 0.95], [0.2, 0.1, 0.2])).name == 0  # full tie: earlier row
    assert best_row(table([math.nan, 0.5], [math.nan, 2.0])).name == 1  # NaN never wins
    with pytest.raises(ValueError, match="diverged"):
        best_row(table([math.nan, math.nan], [math.nan, math.nan]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([0.5, 0.8, 0.9, math.nan]), min_size=1, max_size=8), st.randoms())
def test_best_row_does_not_depend_on_how_the_table_is_shuffled_before_sorting(accs, random):
    if all(math.isnan(a) for a in accs):
        return
    results = table(accs, [1.0] * len(accs))
    winner = best_row(results)
    assert winner["dev_acc"] == np.nanmax(accs)
    assert winner.name == int(np.nanargmax(accs))  # the first of the best, in grid order


def test_best_config_trains_back_to_the_search_score(splits, serial):
    config = best_config(serial, BASE)
    winner = best_row(serial)
    assert config.hidden == winner["hidden"] and config.l2 == winner["l2"] and config.seed == winner["seed"]
    assert (config.epochs, config.batch_size) == (BASE.epochs, BASE.batch_size)
    refit = train(np.random.default_rng(config.seed), config, splits.train, splits.dev)
    assert evaluate(refit.best_params, splits.dev.X, splits.dev.y)[1] == winner["dev_acc"]
