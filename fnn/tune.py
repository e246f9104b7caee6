"""Hyper-parameter search: train one network per grid point, score each on the dev split.

    grid = {"hidden": [(64,), (128,)], "l2": [0.0, 0.1], "lr": [0.1]}
    results = grid_search(0, grid, splits, base=TrainConfig(epochs=10))
    config = best_config(results, base=TrainConfig(epochs=10))

A grid maps `TrainConfig` field names to the values to try; its points are the Cartesian
product, the last key varying fastest. Point i trains with its own seed, child i of
`np.random.SeedSequence(seed).spawn(n_points)`: it depends on the master seed and the point's
position in the grid only, never on which worker runs it or when, so any executor gives the
table a serial run gives.

The search reads `splits.train` and `splits.dev` and nothing else: the test split stays unseen
until the chosen configuration is scored once, by the caller.

Runs go through any `concurrent.futures.Executor` (a ProcessPoolExecutor, or a dask.distributed
or Ray executor to take a big grid to a cluster): the submitted function, `train_point`, is a
top-level function and its arguments (a TrainConfig, an int seed, two Datasets) all pickle.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed

import attrs
import numpy as np
import pandas as pd

from fnn.data import Dataset, Splits
from fnn.errors import TrainingDiverged
from fnn.config import TrainConfig, train
from fnn.train import evaluate

RESULT_COLUMNS = ("seed", "dev_acc", "dev_loss", "seconds", "epochs_run", "stopped")


def grid_points(grid: Mapping[str, Sequence]) -> list[dict]:
    """The Cartesian product of `grid` as a list of {field: value} dicts, last key fastest.

    grid: {TrainConfig field name: non-empty sequence of values}, e.g.
    {"hidden": [(64,), (128,)], "l2": [0.0, 0.1]}. Raises ValueError naming an unknown field
    or an empty list of values.
    """
    fields = attrs.fields_dict(TrainConfig)
    if not grid:
        raise ValueError("grid is empty: pass {TrainConfig field: [values, ...]}, e.g. {'l2': [0.0, 0.1]}")
    for key, values in grid.items():
        if key not in fields or key == "seed":
            known = ", ".join(name for name in fields if name != "seed")
            raise ValueError(f"grid key {key!r} is not a TrainConfig field to search; use one of {known}")
        if isinstance(values, (str, bytes)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[key] for key in keys))]


def point_seeds(seed: int | np.random.SeedSequence | np.random.Generator, n: int) -> list[int]:
    """n int seeds; seed i is drawn from child i of `seed`'s SeedSequence, so an int master seed
    fixes every point's seed by (seed, i) alone.

    seed: an int (the usual, reproducible case), or a SeedSequence / Generator, whose spawn
    counter advances as numpy's `spawn` does: a second call on the same object gives new seeds.
    """
    if isinstance(seed, np.random.Generator):
        children = [child.bit_generator.seed_seq for child in seed.spawn(n)]
    else:
        sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        children = sequence.spawn(n)
    return [int(child.generate_state(1, np.uint32)[0]) for child in children]


def train_point(config: TrainConfig, train_set: Dataset, dev_set: Dataset) -> dict:
    """Train one configuration (seeded by `config.seed`) and score it on dev.

    Returns {dev_acc, dev_loss, seconds, epochs_run, stopped}: accuracy and mean cross-entropy
    (no L2 term) on dev_set of the params the run returns (`FitResult.best_params`, those of
    its best dev evaluation), training seconds (evaluations excluded), epochs completed, and
    how the run ended. A run that diverged scores NaN, so it can never be chosen.
    """
    result = train(np.random.default_rng(config.seed), config, train_set, dev_set)
    dev_loss, dev_acc = evaluate(result.best_params, dev_set.X, dev_set.y)
    if result.stopped == "diverged":
        dev_loss = dev_acc = math.nan
    seconds = float(result.history["seconds"].iloc[-1]) if len(result.history) else 0.0
    return {
        "dev_acc": dev_acc,
        "dev_loss": dev_loss,
        "seconds": seconds,
        "epochs_run": result.state.epoch,
        "stopped": result.stopped,
    }


def limit_blas_threads(threads: int) -> None:
    """Limit this process's BLAS to `threads` threads for the rest of its life (threadpoolctl).

    A worker pool's initializer: the limit is set inside each worker, after its BLAS loaded,
    so the parent process and its environment are left as they were.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def worker_pool(workers: int, blas_threads: int = 1) -> ProcessPoolExecutor:
    """`workers` fresh processes for `grid_search`, each doing its BLAS work on `blas_threads`.

    N processes that each start the BLAS's own thread pool fight over the cores: on a 2-core
    machine 2 workers with 2 OpenBLAS threads each ran a grid no faster than 1 process. The
    workers are spawned, not forked (a forked BLAS thread pool can deadlock), and
    `limit_blas_threads` runs in each before its first task. One worker is a pool too: the
    BLAS's thread count changes the order of its sums, so with the same `blas_threads` every
    grid point runs the same way and the table does not depend on `workers`.
    """
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=limit_blas_threads,
        initargs=(blas_threads,),
    )


def grid_search(
    seed: int | np.random.SeedSequence | np.random.Generator,
    grid: Mapping[str, Sequence],
    splits: Splits,
    *,
    base: TrainConfig = TrainConfig(),
    executor: Executor | None = None,
    on_result: Callable[[dict], object] | None = None,
) -> pd.DataFrame:
    """Train `base` evolved by each grid point on splits.train and score it on splits.dev.

    seed: the master seed (or a SeedSequence / Generator); point i trains with
        `point_seeds(seed, n)[i]`.
    grid: {TrainConfig field: values}, see `grid_points`.
    splits: only .train and .dev are read (and sent to the executor); .test is never touched.
    executor: runs the points (`executor.submit(train_point, config, train, dev)`); None runs
        them one after another in this process. The table is the same either way.
    on_result: called with each finished point's row as it completes (in completion order),
        e.g. to advance a progress bar.
    Returns a DataFrame, one row per point in grid order: the grid's columns (hidden as
    tuples), then seed, dev_acc, dev_loss, seconds, epochs_run, stopped.
    """
    points = grid_points(grid)
    configs = [
        attrs.evolve(base, **point, seed=s) for point, s in zip(points, point_seeds(seed, len(points)))
    ]
    train_set, dev_set = splits.train, splits.dev
    if dev_set.y is None or len(dev_set.y) == 0:
        raise ValueError("the search scores each point on the dev split, but it is empty; pass dev > 0")

    def row(i: int, scores: dict) -> dict:
        finished = {**points[i], "seed": configs[i].seed, **scores}
        if on_result is not None:
            on_result(dict(finished))
        return finished

    if executor is None:
        rows = [row(i, train_point(config, train_set, dev_set)) for i, config in enumerate(configs)]
    else:
        futures = {executor.submit(train_point, config, train_set, dev_set): i for i, config in enumerate(configs)}
        done = {futures[future]: row(futures[future], future.result()) for future in as_completed(futures)}
        rows = [done[i] for i in range(len(configs))]
    return pd.DataFrame(rows, columns=[*grid, *RESULT_COLUMNS])


def best_row(results: pd.DataFrame) -> pd.Series:
    """The winning row: highest dev_acc, ties to the lower dev_loss, then to the earlier row.

    Rows with NaN dev_acc (diverged runs) never win; ValueError when every row is NaN.
    """
    scored = results[np.isfinite(results["dev_acc"].to_numpy(dtype=np.float64))]
    if scored.empty:
        raise TrainingDiverged("every run of the search diverged (dev_acc is NaN); try smaller learning rates")
    order = scored.assign(_row=np.arange(len(scored))).sort_values(
        ["dev_acc", "dev_loss", "_row"], ascending=[False, True, True], kind="stable"
    )
    return scored.loc[order.index[0]]


def best_config(results: pd.DataFrame, base: TrainConfig = TrainConfig()) -> TrainConfig:
    """`base` evolved by the best row's grid values and seed (see `best_row`).

    Training it on the same train split reproduces the search's model for that point (bit for
    bit when the BLAS runs with the same number of threads, which fixes the order of its sums).
    """
    winner = best_row(results)
    fields = attrs.fields_dict(TrainConfig)
    values = {key: winner[key] for key in results.columns if key in fields}
    return attrs.evolve(base, **{key: _plain(value) for key, value in values.items()})


def _plain(value):
    """numpy scalars from a DataFrame cell back to Python ints/floats, for TrainConfig's validators."""
    return value.item() if isinstance(value, np.generic) else value

