"""`fit`: the training fold, observed. Small pure pieces over the stream of states:

    steps    = accumulate(advance, batches, start)        every update, with its loss and grads
    points   = filter(is_point, steps)                    evaluation points: epoch ends, every
                                                          `eval_every` updates, a non-finite loss
    observed = map(observe, points)                       a history row (or a divergence) each
    monitors = accumulate(absorb, observed + [END], m0)   a frozen Monitor: rows, best params,
                                                          best score, evaluations since the best
    final    = first monitor that says stop               "completed", "early_stop", "diverged"

Everything is lazy, so the stream stops being computed the moment the monitor says stop.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import toolz

from fnn import checks
from fnn.layers import RELU_FAMILY
from fnn.nn import check_batch, check_labels, forward_pass
from fnn.optim import Optimizer
from fnn.params import MLP
from fnn.text import count
from fnn.train import Batch, StepOutput, TrainState, advance, batches, init_state, scan, steps_per_epoch
from fnn.tree import global_norm, tree_leaves

if TYPE_CHECKING:  # pandas loads when fit builds its history, not with `import fnn`
    import pandas as pd

MONITORS = ("dev_acc", "dev_loss")
# A training loss this many times its first evaluation (or 1, whichever is larger) is divergence
# too: the weights are exploding even if every number is still finite.
DIVERGENCE_FACTOR = 10.0


@attrs.frozen(eq=False)
class FitResult:
    """What `fit` returns.

    state: the final TrainState; after a divergence, the last state whose loss was finite.
    best_params: the params at the history's best row for the monitored dev metric (the final
        params when there is no dev set).
    history: pandas DataFrame, one row per evaluation (see `fit`).
    stopped: "completed", "early_stop" or "diverged"; message: one clause saying why, naming
        the step and learning rate when the loss diverged (then `state.step` is the step whose
        parameters were kept, the last with a finite loss).
    """

    state: TrainState
    best_params: MLP
    history: pd.DataFrame
    stopped: str
    message: str


# ---------------------------------------------------------------- validation, once


def arrays(name: str, data) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) from a Dataset-like record (`.X`, `.y`) or an (X, y) pair."""
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y = data.X, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        raise TypeError(f"{name} must be a Dataset (with .X and .y) or an (X, y) pair, got {type(data).__name__}")
    if y is None:
        raise ValueError(f"{name} has no labels (y is None): training and evaluation need labelled rows")
    return X, y


def _labelled(params: MLP, name: str, data) -> tuple[np.ndarray, np.ndarray]:
    """(X in the params' dtype, y), checked against the network: one row through it gives k."""
    X, y = check_batch(params, *arrays(name, data))
    check_labels(y, forward_pass(params, X[:1])[0][-1].shape[1])
    return X, y


# ---------------------------------------------------------------- the pieces of the fold


@attrs.frozen(eq=False)
class _Step:
    """One update (`out`) and `certified`: the latest state whose loss is known to be finite
    (NaNs propagate through the matmuls, so a finite loss certifies the params it came from)."""

    out: StepOutput
    certified: TrainState


def _next_step(prev: _Step, batch: Batch, optimizer: Optimizer, l2: float) -> _Step:
    out = advance(prev.out.state, batch, optimizer, l2)
    return _Step(out, out.previous if math.isfinite(out.loss) else prev.certified)


def _is_point(eval_every: int | None, last: int, full_batch: bool, step: _Step) -> bool:
    """Evaluate after every `eval_every` updates and at each epoch's end; in full-batch training,
    where every update ends an epoch, `eval_every` alone decides (and the last update). A
    non-finite loss is always a point: the monitor stops there."""
    out = step.out
    t = out.state.step
    every = bool(eval_every and t % eval_every == 0)
    at_end = (out.end and not (full_batch and eval_every)) or t == last
    return at_end or every or not math.isfinite(out.loss)


@attrs.frozen(eq=False)
class _Observation:
    """An evaluation point: its step, its history row (None when the step's loss was not
    finite) and the clock on entering and leaving the evaluation."""

    step: _Step
    row: dict | None
    entered: float
    left: float


def _last_lr(optimizer: Optimizer, state: TrainState) -> float:
    """The learning rate the update that produced `state` used (NaN if the optimizer has none)."""
    return optimizer.schedule(state.step - 1) if optimizer.schedule is not None else math.nan


def _row(out: StepOutput, optimizer: Optimizer, train_eval, dev, chunk: int) -> dict:
    """One history row for `out.state` (see `fit` for the columns; `seconds` is the monitor's)."""
    params = out.state.params
    train_scan = scan(params, *train_eval, chunk)
    dev_scan = scan(params, *dev, chunk) if dev is not None else None
    owners = [j for j, layer in enumerate(params.layers) if tree_leaves(layer)]
    return {
        "step": out.state.step,
        "epoch": out.state.epoch,
        "lr": _last_lr(optimizer, out.state),
        "seconds": math.nan,
        "train_loss": train_scan.ce_sum / train_scan.rows,
        "train_acc": train_scan.correct / train_scan.rows,
        "dev_loss": dev_scan.ce_sum / dev_scan.rows if dev_scan is not None else math.nan,
        "dev_acc": dev_scan.correct / dev_scan.rows if dev_scan is not None else math.nan,
        **{f"grad_norm_{i}": global_norm(out.grads.layers[j]) for i, j in enumerate(owners, 1)},
        **{
            f"update_ratio_{i}": global_norm(out.updates.layers[j]) / global_norm(params.layers[j])
            for i, j in enumerate(owners, 1)
        },
        **{name: 1.0 - float(alive.mean()) for name, alive in zip(_dead_columns(params), train_scan.alive)},
    }


def _observe(step: _Step, optimizer, train_eval, dev, chunk: int, clock) -> _Observation:
    entered = clock()
    row = _row(step.out, optimizer, train_eval, dev, chunk) if math.isfinite(step.out.loss) else None
    return _Observation(step, row, entered, clock())


def _dead_columns(params: MLP) -> list[str]:
    """dead_frac_<i> for each ReLU-family layer, i = the number of parameter layers before it."""
    names, owners = [], 0
    for layer in params.layers:
        owners += bool(tree_leaves(layer))
        if isinstance(layer, RELU_FAMILY):
            names.append(f"dead_frac_{owners}")
    return names


def history_columns(params: MLP) -> list[str]:
    """The history's columns for `params`: i counts the layers with parameters (from 1)."""
    owners = range(1, sum(bool(tree_leaves(layer)) for layer in params.layers) + 1)
    return (
        ["step", "epoch", "lr", "seconds", "train_loss", "train_acc", "dev_loss", "dev_acc"]
        + [f"grad_norm_{i}" for i in owners]
        + [f"update_ratio_{i}" for i in owners]
        + _dead_columns(params)
    )


@attrs.frozen(eq=False)
class Monitor:
    """The fold's accumulator over evaluation points; after a recorded row, also a checkpoint
    (`fit(..., checkpoint=save)` receives it, `fit(..., resume=monitor)` continues from it).

    rows: the history so far; good: the latest state known to be finite; best, best_params,
    since_best: the monitored metric's best value, its params, evaluations since it;
    eval_seconds: time spent evaluating (excluded from `seconds`); fresh: the last point added
    a row; stopped, message: set when the fold must stop.
    """

    start: float
    good: TrainState
    best_params: MLP
    rows: tuple[dict, ...] = ()
    best: float = math.nan
    since_best: int = 0
    eval_seconds: float = 0.0
    fresh: bool = False
    stopped: str | None = None
    message: str = ""


_END = None  # appended to the observations: the stream of batches ran out


def _diverged(m: Monitor, loss: float, state: TrainState, good: TrainState, optimizer) -> Monitor:
    """Stop: a non-finite loss seen at `state`, one update after `good`."""
    message = (
        f"diverged: the training loss became {loss} at step {state.step} (epoch {good.epoch + 1}) "
        f"with learning rate {_last_lr(optimizer, state):g}"
    )
    best_params = m.best_params if m.rows else good.params
    return attrs.evolve(m, good=good, best_params=best_params, fresh=False, stopped="diverged", message=message)


def _absorb(m: Monitor, obs: _Observation | None, *, optimizer, epochs, monitor, patience, has_dev) -> Monitor:
    """The monitor after one more evaluation point (or after the stream ended: obs is _END)."""
    if obs is _END:
        return attrs.evolve(m, fresh=False, stopped="completed", message=f"completed {count(epochs, 'epoch')}")
    out = obs.step.out
    if obs.row is None:  # the loss at out.previous's params was not finite
        return _diverged(m, out.loss, out.previous, obs.step.certified, optimizer)
    if not math.isfinite(obs.row["train_loss"]):  # this update broke the params
        return _diverged(m, obs.row["train_loss"], out.state, obs.step.certified, optimizer)
    if m.rows and obs.row["train_loss"] > DIVERGENCE_FACTOR * max(m.rows[0]["train_loss"], 1.0):
        # finite but exploding (a huge lr in full-batch gd): as good as diverged; keep the best so far
        return _diverged(m, obs.row["train_loss"], out.state, m.good, optimizer)
    row = {**obs.row, "seconds": obs.entered - m.start - m.eval_seconds}
    m = attrs.evolve(
        m, good=out.state, rows=m.rows + (row,), eval_seconds=m.eval_seconds + obs.left - obs.entered, fresh=True
    )
    if not has_dev or math.isnan(m.best) or _improved(monitor, row[monitor], m.best):
        return attrs.evolve(m, best=row[monitor], best_params=out.state.params, since_best=0)
    m = attrs.evolve(m, since_best=m.since_best + 1)
    if patience is not None and m.since_best >= patience:
        message = (
            f"stopped early at step {out.state.step}: {monitor} did not improve for {patience} "
            f"evaluations; best {monitor} = {m.best:.4f}"
        )
        return attrs.evolve(m, stopped="early_stop", message=message)
    return m


def _improved(monitor: str, value: float, best: float) -> bool:
    return value > best if monitor == "dev_acc" else value < best


# ---------------------------------------------------------------- fit


def fit(
    rng: np.random.Generator,
    params: MLP,
    optimizer: Optimizer,
    train,
    dev=None,
    *,
    epochs: int,
    batch_size: int | str | None = 128,
    l2: float = 0.0,
    eval_every: int | None = None,
    patience: int | None = None,
    monitor: str = "dev_acc",
    train_eval_size: int = 10_000,
    eval_chunk: int = 8192,
    callback: Callable[[dict], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    checkpoint: Callable[[Monitor], Any] | None = None,
    resume: Monitor | None = None,
) -> FitResult:
    """Train `params` with `optimizer` for up to `epochs` epochs of mini-batches of `train`.

    rng: split three ways: the batch stream, the training rows the history evaluates, and the
        seed of in-step randomness (dropout masks); the same seed and inputs give the same
        parameters and history, bit for bit (the seconds aside).
    train, dev: Datasets (anything with .X, .y) or (X, y) pairs, X: (n, n_0), y: (n,) int.
        Both are validated once here; dev is optional (no dev columns, no early stopping).
    batch_size: rows per update, or None / "full" for full-batch gradient descent.
    l2: the loss's weight penalty (l2/(2m)) Σ||W||², m the batch's rows.
    eval_every: record a history row every this many updates; rows are recorded at the end of
        every epoch in any case, except in full-batch training (one update per epoch), where
        eval_every alone decides (and the last update always has a row).
    patience: stop after this many evaluations in a row without a strict improvement of
        `monitor` ("dev_acc", higher is better, or "dev_loss", lower is better); None: never.
    train_eval_size: the train columns are measured on a fixed random subset of this many
        training rows (all rows when there are fewer), chosen once from rng, to keep evaluation
        cheap; evaluations run `eval_chunk` rows at a time, without dropout.
    callback: called with each history row (a dict) as it is recorded, e.g. a progress bar.
    clock: the time source for the `seconds` column (time.perf_counter).
    checkpoint: called with the Monitor after each recorded row (its `good` is the state of
        that row): everything `resume` needs (see `fnn.checkpoint` for a file form).
    resume: such a Monitor: training continues from its state, history and best params, and
        ends with the same bits as a run never interrupted (same rng, data and arguments).

    History columns, one row per evaluation (i counts the layers with parameters, from 1):
        step, epoch            updates applied and epochs completed
        lr                     the learning rate of the last update (NaN if the optimizer has none)
        seconds                training time so far, evaluations excluded
        train_loss, train_acc  mean cross-entropy (no l2 term) and accuracy on the train subset
        dev_loss, dev_acc      the same on the dev set (NaN without one)
        grad_norm_<i>          the gradient norm of parameter layer i on the last batch
        update_ratio_<i>       ||Δθ_i|| / ||θ_i|| of the last update (θ_i after it)
        dead_frac_<i>          for each ReLU-family layer after parameter layer i: the fraction
                               of its units that are 0 for every train-subset row

    A non-finite training loss stops the run at once: `stopped` is "diverged", the message names
    the step and learning rate, and `state` holds the last parameters whose loss was finite. So
    does a training loss above DIVERGENCE_FACTOR times the first evaluation's (at least 1);
    then `state` is the last evaluated one.
    """
    X, y = _labelled(params, "train", train)
    dev = _labelled(params, "dev", dev) if dev is not None else None
    l2 = checks.non_negative_float("l2", l2)
    epochs = checks.positive_int("epochs", epochs)
    eval_every = checks.optional_positive_int("eval_every", eval_every)
    patience = checks.optional_positive_int("patience", patience)
    train_eval_size = checks.positive_int("train_eval_size", train_eval_size)
    eval_chunk = checks.positive_int("eval_chunk", eval_chunk)
    checks.one_of("monitor", monitor, MONITORS)
    if patience is not None and dev is None:
        raise ValueError("patience needs a dev set to monitor: pass dev=(X_dev, y_dev) or patience=None")

    stream_rng, subset_rng, seed_rng = rng.spawn(3)
    per_epoch = steps_per_epoch(X.shape[0], batch_size)
    n = X.shape[0]
    rows = np.sort(subset_rng.choice(n, size=train_eval_size, replace=False)) if n > train_eval_size else None
    train_eval = (X[rows], y[rows]) if rows is not None else (X, y)

    state0 = init_state(params, optimizer, seed=int(seed_rng.integers(2**63)))
    if resume is not None:  # the same stream, less the batches the resumed state has seen
        state0 = resume.good
        start = attrs.evolve(resume, start=clock() - resume.rows[-1]["seconds"], eval_seconds=0.0, fresh=False)
    else:
        start = Monitor(clock(), state0, params)
    steps = toolz.drop(1, toolz.accumulate(
        functools.partial(_next_step, optimizer=optimizer, l2=l2),
        toolz.drop(state0.step, batches(stream_rng, X, y, batch_size, epochs)),
        _Step(StepOutput(state0, state0, 0.0, None, None, False), state0),
    ))
    observed = map(
        functools.partial(_observe, optimizer=optimizer, train_eval=train_eval, dev=dev, chunk=eval_chunk, clock=clock),
        filter(functools.partial(_is_point, eval_every, epochs * per_epoch, per_epoch == 1), steps),
    )
    absorb = functools.partial(
        _absorb, optimizer=optimizer, epochs=epochs, monitor=monitor, patience=patience, has_dev=dev is not None
    )
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported instead
        monitors = toolz.accumulate(absorb, toolz.concat([observed, [_END]]), start)
        final = toolz.first(
            m for m in map(functools.partial(_report, callback, checkpoint), toolz.drop(1, monitors)) if m.stopped
        )
    import pandas as pd  # here, not at the top: `import fnn` loads numpy, attrs and toolz only

    history = pd.DataFrame(list(final.rows), columns=history_columns(params))
    return FitResult(final.good, final.best_params, history, final.stopped, final.message)


def _report(callback, checkpoint, m: Monitor) -> Monitor:
    """When `m` just recorded a row: hand the row to `callback` and `m` to `checkpoint`. Returns m."""
    if m.fresh and callback is not None:
        callback(dict(m.rows[-1]))
    if m.fresh and checkpoint is not None:
        checkpoint(m)
    return m
