"""Hyper-parameter search: train one network per point (and seed), score each on the dev split.

    grid = {"hidden": [(64,), (128,)], "l2": [0.0, 0.1], "lr": [0.1]}
    results = grid_search(0, grid, splits, base=TrainConfig(epochs=10), repeats=3)
    config = best_config(results, base=TrainConfig(epochs=10))

A grid maps `TrainConfig` field names to the values to try; its points are the Cartesian
product, the last key varying fastest. `sample_points` draws points at random from a space of
choices and log-uniform ranges instead, and `search` takes any list of points.

An honest search scores a configuration the same wherever it appears: a point's seeds come
from the master seed and the point's configuration (`point_seeds`), never from its position in
the grid, the worker that runs it or the time it finishes. Adding points to a grid leaves the
others' scores alone, and any executor gives the table a serial run gives. With `repeats=K`
each point trains with K seeds and is judged on the mean dev accuracy, beside its standard
deviation: the seed noise a difference between points has to beat.

The search reads `splits.train` and `splits.dev` and nothing else: the test split stays unseen
until the chosen configuration is scored once, by the caller.

Runs go through any `concurrent.futures.Executor` (`worker_pool`, or
`distributed.Client(address).get_executor()` to take a big search to a Dask cluster): the
submitted function, `train_point`, is a top-level function and its arguments (a TrainConfig
and two Datasets) all pickle.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import multiprocessing
import signal
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed

import attrs
import numpy as np
import pandas as pd

from fnn.data import Dataset, Splits
from fnn.errors import TrainingDiverged
from fnn.config import TrainConfig, train
from fnn.training import evaluate

RESULT_COLUMNS = ("seed", "seeds", "dev_acc", "dev_acc_std", "dev_loss", "seconds", "epochs_run", "stopped")


# ---------------------------------------------------------------- the points


def grid_points(grid: Mapping[str, Sequence]) -> list[dict]:
    """The Cartesian product of `grid` as a list of {field: value} dicts, last key fastest.

    grid: {TrainConfig field name: non-empty sequence of values}, e.g.
    {"hidden": [(64,), (128,)], "l2": [0.0, 0.1]}. Raises ValueError naming an unknown field
    or an empty list of values.
    """
    if not grid:
        raise ValueError("grid is empty: pass {TrainConfig field: [values, ...]}, e.g. {'l2': [0.0, 0.1]}")
    for key, values in grid.items():
        _check_field("grid", key)
        if isinstance(values, (str, bytes)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[key] for key in keys))]


def _check_field(name: str, key: str) -> None:
    fields = attrs.fields_dict(TrainConfig)
    if key not in fields or key == "seed":
        known = ", ".join(field for field in fields if field != "seed")
        raise ValueError(f"{name} key {key!r} is not a TrainConfig field to search; use one of {known}")


def _positive_range(instance, attribute, high):
    if not 0 < instance.low <= high:
        raise ValueError(f"LogUniform needs 0 < low <= high, got low={instance.low!r}, high={high!r}")


@attrs.frozen
class LogUniform:
    """A range to draw a positive hyper-parameter from: log(value) uniform on [log low, log high].

    zero: 0 is a choice of its own besides the range, drawn for half the points (log-uniform
    can never reach 0, the natural "no L2" of a search).
    """

    low: float = attrs.field(converter=float)
    high: float = attrs.field(converter=float, validator=_positive_range)
    zero: bool = False


def log_uniform_between(values: Sequence[float]) -> LogUniform | list[float]:
    """The range a list of flag values spans: LogUniform(min, max) over its positive values,
    with `zero` when it holds a 0; a plain list of choices when fewer than two positive values
    differ (nothing to spread between). values: e.g. tune's --lrs or --l2s, [0.0, 1e-3, 0.1].
    """
    positive = sorted({float(v) for v in values if v > 0})
    has_zero = any(v == 0 for v in values)
    if len(positive) < 2:
        return [0.0] * has_zero + positive
    return LogUniform(positive[0], positive[-1], zero=has_zero)


def sample_points(rng: np.random.Generator, space: Mapping[str, Sequence | LogUniform], n: int) -> list[dict]:
    """n random points of `space`, drawn in order, then duplicates dropped (the same point
    always scores the same, so a second copy would only cost time): at most n points.

    space: {TrainConfig field: a list of values to pick from uniformly, or a LogUniform}.
    Values drawn from a LogUniform are rounded to 3 significant digits (kept inside its
    range), so tables and heat maps read lr 0.0316, not 0.031622776601683794.
    """
    for key, values in space.items():
        _check_field("space", key)
        if not isinstance(values, LogUniform) and (isinstance(values, (str, bytes)) or len(values) == 0):
            raise ValueError(f"space[{key!r}] must be a LogUniform or a non-empty list of values, got {values!r}")
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    points = [{key: _draw(rng, values) for key, values in space.items()} for _ in range(n)]
    return list({repr(tuple(point.items())): point for point in points}.values())  # first places kept


def _draw(rng: np.random.Generator, values: Sequence | LogUniform):
    if not isinstance(values, LogUniform):
        return values[int(rng.integers(len(values)))]
    if values.zero and rng.random() < 0.5:
        return 0.0
    value = float(np.exp(rng.uniform(np.log(values.low), np.log(values.high))))
    return min(max(float(f"{value:.3g}"), values.low), values.high)


# ---------------------------------------------------------------- seeds from configurations


def config_key(config: TrainConfig) -> str:
    """The canonical text of a configuration, seed excluded: 'field=value' for each field that
    differs from TrainConfig's default, sorted by name and joined by ';'.

    Equal configurations give equal keys however they were written (0.1 or np.float64(0.1),
    [64] or (64,), 0 or 0.0 for a float field), and leaving defaults out keeps the keys, and
    so the seeds, of existing configurations when TrainConfig gains a field.
    """
    parts = []
    for field in sorted(attrs.fields(TrainConfig), key=lambda field: field.name):
        if field.name == "seed":
            continue
        value = _canonical(getattr(config, field.name), field.type)
        if value != _canonical(field.default, field.type):
            parts.append(f"{field.name}={value!r}")
    return ";".join(parts)


def _canonical(value, annotation):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_canonical(v, None) for v in value)
    if annotation in ("float", float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def point_seeds(seed: int | np.random.SeedSequence, config: TrainConfig, repeats: int = 1) -> tuple[int, ...]:
    """The `repeats` int seeds a configuration trains with, from the master seed and
    `config_key(config)` alone: the same configuration gets the same seeds in any search.

    The key's SHA-256 digest joins four words of the master SeedSequence as the entropy of
    a SeedSequence whose children 0, 1, ... give seed 0, 1, ...; so the first seeds of K + 1
    repeats are those of K.
    """
    if isinstance(seed, (bool, np.random.Generator)) or not isinstance(seed, (int, np.integer, np.random.SeedSequence)):
        raise TypeError(
            f"seed must be an int or a numpy SeedSequence (each point's seeds derive from it and the "
            f"point's configuration), got {type(seed).__name__}"
        )
    master = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    digest = np.frombuffer(hashlib.sha256(config_key(config).encode()).digest(), dtype="<u4")
    entropy = [int(word) for word in (*master.generate_state(4), *digest)]
    root = np.random.SeedSequence(entropy)
    return tuple(int(child.generate_state(1, np.uint32)[0]) for child in root.spawn(repeats))


# ---------------------------------------------------------------- one run


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
    """A worker's initializer: limit its BLAS to `threads` threads for the rest of its life
    (threadpoolctl; set inside the worker, after its BLAS loaded, so the parent process and its
    environment are left as they were), and leave Ctrl-C to the parent: a terminal sends SIGINT
    to the whole process group, and the parent stops the pool itself, so workers that also took
    it would only print tracebacks."""
    from threadpoolctl import threadpool_limits

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a Ctrl-C that came during start-up
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # see Worker
    threadpool_limits(limits=threads, user_api="blas")


class Worker(multiprocessing.context.SpawnProcess):
    """A spawned worker born with SIGINT blocked, so a Ctrl-C that reaches it while it is still
    starting (importing numpy and fnn, before `limit_blas_threads` runs) waits instead of raising
    KeyboardInterrupt with a traceback. The mask is the spawning thread's, and only while it
    starts the process: the parent's own Ctrl-C arrives as soon as the worker exists."""

    def start(self) -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = Worker


def worker_pool(workers: int, blas_threads: int = 1) -> ProcessPoolExecutor:
    """`workers` fresh processes for `grid_search`, each doing its BLAS work on `blas_threads`.

    N processes that each start the BLAS's own thread pool fight over the cores: on a 2-core
    machine 2 workers with 2 OpenBLAS threads each ran a grid no faster than 1 process. The
    workers are spawned, not forked (a forked BLAS thread pool can deadlock), born deaf to
    Ctrl-C (`Worker`), and `limit_blas_threads` runs in each before its first task. One worker is a pool too: the
    BLAS's thread count changes the order of its sums, so with the same `blas_threads` every
    grid point runs the same way and the table does not depend on `workers`.
    """
    return ProcessPoolExecutor(
        workers,
        mp_context=_WorkerContext(),
        initializer=limit_blas_threads,
        initargs=(blas_threads,),
    )


# ---------------------------------------------------------------- the search


def search(
    seed: int | np.random.SeedSequence,
    points: Sequence[Mapping],
    splits: Splits,
    *,
    base: TrainConfig = TrainConfig(),
    repeats: int = 1,
    executor: Executor | None = None,
    on_result: Callable[[dict], object] | None = None,
) -> pd.DataFrame:
    """Train `base` evolved by each point with each of its `point_seeds`, on splits.train, and
    score the runs on splits.dev.

    seed: the master seed (an int or a SeedSequence).
    points: [{TrainConfig field: value}, ...] (`grid_points`, `sample_points`), all with the
        same keys.
    splits: only .train and .dev are read (and sent to the executor); .test is never touched.
    repeats: seeds per point, K >= 1.
    executor: runs the len(points) x K runs (`executor.submit(train_point, config, train,
        dev)`); None runs them one after another here. The table is the same either way.
    on_result: called with each finished run's row as it completes (in completion order):
        the point's values, seed, repeat and `train_point`'s scores, e.g. for a progress bar.
    Returns a DataFrame, one row per point in the given order: the points' columns (hidden as
    tuples), then
        seed         the first of the point's seeds: `best_config` retrains with it
        seeds        all K seeds, a tuple
        dev_acc      mean dev accuracy over the K runs (NaN if any diverged)
        dev_acc_std  its sample standard deviation (ddof 1; NaN when K = 1)
        dev_loss     mean dev cross-entropy; seconds: mean training seconds of one run
        epochs_run   the most epochs a run completed
        stopped      "diverged" if a run diverged, else "early_stop" if a run stopped early,
                     else "completed"
    """
    if not points:
        raise ValueError("points is empty: pass at least one {TrainConfig field: value} dict")
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    keys = list(points[0])
    for point in points:
        if list(point) != keys:
            raise ValueError(f"every point must set the same fields {keys}, got {list(point)}")
        for key in point:
            _check_field("point", key)
    train_set, dev_set = splits.train, splits.dev
    if dev_set.y is None or len(dev_set.y) == 0:
        raise ValueError("the search scores each point on the dev split, but it is empty; pass dev > 0")
    configs = [attrs.evolve(base, **point) for point in points]
    seeds = [point_seeds(seed, config, repeats) for config in configs]
    runs = [(i, r, attrs.evolve(config, seed=s)) for i, config in enumerate(configs) for r, s in enumerate(seeds[i])]

    def finished(run: int, scores: dict) -> dict:
        i, r, config = runs[run]
        if on_result is not None:
            on_result({**points[i], "seed": config.seed, "repeat": r, **scores})
        return scores

    if executor is None:
        scores = [finished(j, train_point(config, train_set, dev_set)) for j, (_, _, config) in enumerate(runs)]
    else:
        futures = {executor.submit(train_point, config, train_set, dev_set): j for j, (_, _, config) in enumerate(runs)}
        done = {futures[future]: finished(futures[future], future.result()) for future in as_completed(futures)}
        scores = [done[j] for j in range(len(runs))]
    rows = [
        {**point, **_summary(seeds[i], scores[i * repeats:(i + 1) * repeats])} for i, point in enumerate(points)
    ]
    return pd.DataFrame(rows, columns=[*keys, *RESULT_COLUMNS])


def _summary(seeds: tuple[int, ...], runs: list[dict]) -> dict:
    """One point's row from its runs' scores (see `search`)."""
    accs = np.array([run["dev_acc"] for run in runs], dtype=np.float64)
    stopped = {run["stopped"] for run in runs}
    return {
        "seed": seeds[0],
        "seeds": seeds,
        "dev_acc": float(accs.mean()),
        "dev_acc_std": float(accs.std(ddof=1)) if len(accs) > 1 else math.nan,
        "dev_loss": float(np.mean([run["dev_loss"] for run in runs])),
        "seconds": float(np.mean([run["seconds"] for run in runs])),
        "epochs_run": max(run["epochs_run"] for run in runs),
        "stopped": next((how for how in ("diverged", "early_stop") if how in stopped), "completed"),
    }


def grid_search(
    seed: int | np.random.SeedSequence,
    grid: Mapping[str, Sequence],
    splits: Splits,
    *,
    base: TrainConfig = TrainConfig(),
    repeats: int = 1,
    executor: Executor | None = None,
    on_result: Callable[[dict], object] | None = None,
) -> pd.DataFrame:
    """`search` over the points of `grid` (see `grid_points`), one row per point in grid order."""
    return search(
        seed, grid_points(grid), splits, base=base, repeats=repeats, executor=executor, on_result=on_result
    )


# ---------------------------------------------------------------- choosing the best


def best_row(results: pd.DataFrame) -> pd.Series:
    """The winning row: highest dev_acc (the mean over a point's seeds), ties to the lower
    dev_loss, then to the earlier row.

    Rows with NaN dev_acc (diverged runs) never win; TrainingDiverged when every row is NaN.
    """
    scored = results[np.isfinite(results["dev_acc"].to_numpy(dtype=np.float64))]
    if scored.empty:
        raise TrainingDiverged("every run of the search diverged (dev_acc is NaN); try smaller learning rates")
    order = scored.assign(_row=np.arange(len(scored))).sort_values(
        ["dev_acc", "dev_loss", "_row"], ascending=[False, True, True], kind="stable"
    )
    return scored.loc[order.index[0]]


def best_config(results: pd.DataFrame, base: TrainConfig = TrainConfig()) -> TrainConfig:
    """`base` evolved by the best row's searched values and its `seed` (see `best_row`).

    Training it on the same train split reproduces the search's first run of that point (bit
    for bit when the BLAS runs with the same number of threads, which fixes the order of its
    sums).
    """
    winner = best_row(results)
    fields = attrs.fields_dict(TrainConfig)
    values = {key: winner[key] for key in results.columns if key in fields}
    return attrs.evolve(base, **{key: _plain(value) for key, value in values.items()})


def _plain(value):
    """numpy scalars from a DataFrame cell back to Python ints/floats, for TrainConfig's validators."""
    return value.item() if isinstance(value, np.generic) else value
