"""`fit`: the training fold, observed. One scan over the batch stream:

    monitors = accumulate(fold_step, batches, m0)    m: a frozen Monitor, the fold's one
                                                     accumulator (state, history, best, ...)
    final    = first(m for m in monitors if m.stopped)

`fold_step(m, batch)` runs `train_step` on m.state and, at an evaluation point (each epoch's
end, every `eval_every` updates, the last update), records a history row, the best params and
the last good state; it sets `stopped` ("completed", "early_stop", "diverged") when the run
must end. The stream is lazy, so nothing is computed past the first stopped monitor.

`fit` owns the states of its fold, so it donates each one to the next step (see
`fnn.training.train_step`): a step writes into the buffers of the one before. What it keeps (the
best params, the last good state) it copies, once per evaluation point.
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
from fnn.augment import Augmentation, transform
from fnn.nn import check_batch, check_finite, check_labels, check_labels_array, check_weights, forward_pass
from fnn.optim import Optimizer
from fnn.params import MLP
from fnn.text import count
from fnn.training import (
    Augment, Batch, StepOutput, TrainState, advance, batches, copy_state, dense, init_state, scan, steps_per_epoch,
)
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

    state: the final TrainState; after a divergence, the last evaluated state (its loss finite).
    best_params: the params at the history's best row for the monitored dev metric (the final
        params when there is no dev set).
    history: pandas DataFrame, one row per evaluation (see `fit`).
    stopped: "completed", "early_stop" or "diverged"; message: one clause saying why, naming
        the step and learning rate when the loss diverged (then `state.step` is the step of the
        parameters kept: the last evaluation's).
    """

    state: TrainState
    best_params: MLP
    history: pd.DataFrame
    stopped: str
    message: str


# ---------------------------------------------------------------- validation, once


def arrays(name: str, data) -> tuple:
    """(X, y, w) from a Dataset-like record (`.X`, `.y`; w None), an (X, y) pair or an (X, y, w)
    triple, w the rows' weights."""
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y, w = data.X, data.y, None
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        X, y, w = (*data, None)[:3]
    else:
        raise TypeError(
            f"{name} must be a Dataset (with .X and .y), an (X, y) pair or an (X, y, w) triple, got {type(data).__name__}"
        )
    if y is None:
        raise ValueError(f"{name} has no labels (y is None): training and evaluation need labelled rows")
    return X, y, w


def _labelled(params: MLP, name: str, data) -> tuple:
    """(X in the params' dtype, y, w), checked against the network: one row through it gives k.
    A scipy.sparse X (anything with `toarray`) stays sparse, as CSR: its stored values are
    checked here and each batch is densified when it is drawn."""
    X, y, w = arrays(name, data)
    if hasattr(X, "toarray"):
        first, _ = check_batch(params, X[:1].toarray())  # the width and the kind of numbers
        X = X.tocsr().astype(first.dtype)
        check_finite(X.data.reshape(1, -1))
        y = check_labels_array(y, X.shape[0], first.dtype)
    else:
        X, y = check_batch(params, X, y)
        first = X[:1]
    check_labels(y, forward_pass(params, first)[0][-1].shape[1])
    return X, y, check_weights(w, X.shape[0], first.dtype)


def _checked_augment(augment, X: np.ndarray) -> Augment | None:
    """`augment` as a transform, tried once on X's first row: it must keep its shape and dtype."""
    augment = transform(augment) if isinstance(augment, Augmentation) else augment
    if augment is None:
        return None
    if not callable(augment):
        raise TypeError(f"augment must be an fnn.augment.Augmentation or a function (rng, X) -> X', got {augment!r}")
    out = augment(np.random.default_rng(0), X[:1])
    if getattr(out, "shape", None) != X[:1].shape or getattr(out, "dtype", None) != X.dtype:
        raise ValueError(
            f"augment must return an array of its input's shape and dtype, {X[:1].shape} {X.dtype}; got "
            f"{getattr(out, 'shape', type(out).__name__)} {getattr(out, 'dtype', '')}".rstrip()
        )
    return augment


# ---------------------------------------------------------------- the fold's accumulator


@attrs.frozen(eq=False)
class Monitor:
    """The fold's accumulator; after a recorded row, also a checkpoint (`fit(...,
    checkpoint=save)` receives it, `fit(..., resume=monitor)` continues from it).

    state: the live state (donated to the next step: read it, never keep it); good: a copy of
    the state of the last recorded row; rows: the history so far; best, best_params,
    since_best: the monitored metric's best value, a copy of its params, evaluations since it;
    start: the clock when training began, less the seconds already trained before a resume;
    eval_seconds: time spent evaluating (excluded from `seconds`); fresh: this step added a
    row; stopped, message: set when the fold must stop; loss_sum, loss_rows: Σ J_batch · rows
    and Σ rows of the batches since the last row (0 at a row, so a checkpoint needs neither).
    """

    state: TrainState
    good: TrainState
    best_params: MLP
    start: float
    rows: tuple[dict, ...] = ()
    best: float = math.nan
    since_best: int = 0
    eval_seconds: float = 0.0
    fresh: bool = False
    stopped: str | None = None
    message: str = ""
    loss_sum: float = 0.0
    loss_rows: int = 0


@attrs.frozen(eq=False)
class _Run:
    """What stays fixed through a fit: the optimizer and l2, the evaluation sets and settings."""

    optimizer: Optimizer
    l2: float
    epochs: int
    last: int  # the last update's step
    eval_every: int | None
    full_batch: bool
    train_eval: tuple  # (X, y, w, rows): the training set and the sorted rows the history scores (None: all)
    dev: tuple | None
    chunk: int
    monitor: str
    patience: int | None
    clock: Callable[[], float]
    augment: Augment | None = None


def _is_point(run: _Run, state: TrainState, batch: Batch) -> bool:
    """Whether the update `state` is about to make on `batch` is evaluated: every `eval_every`
    updates and at each epoch's end; in full-batch training, where every update ends an epoch,
    `eval_every` alone decides (and the last update)."""
    t = state.step + 1
    every = bool(run.eval_every and t % run.eval_every == 0)
    return every or (batch.end and not (run.full_batch and run.eval_every)) or t == run.last


def _fold_step(run: _Run, m: Monitor, batch: Batch) -> Monitor:
    """The monitor after one more update, donating m.state to it; at evaluation points the step
    also measures its gradient and update for the health columns."""
    point = _is_point(run, m.state, batch)
    out = advance(m.state, batch, run.optimizer, run.l2, donate=True, augment=run.augment, observe=point)
    if not math.isfinite(out.loss):  # the params this step started from are not sane
        return _diverged(run, m, out.loss, m.state.step)
    rows = batch.X.shape[0]
    m = attrs.evolve(m, state=out.state, fresh=False, loss_sum=m.loss_sum + out.loss * rows, loss_rows=m.loss_rows + rows)
    return _record(run, m, out) if point else m


def _last_lr(optimizer: Optimizer, step: int) -> float:
    """The learning rate of the update that produced step `step` (NaN if the optimizer has none)."""
    return optimizer.schedule(step - 1) if optimizer.schedule is not None else math.nan


def _diverged(run: _Run, m: Monitor, loss: float, step: int) -> Monitor:
    """Stop: a non-finite or exploding loss at step `step`; keep the last recorded state."""
    message = (
        f"diverged: the training loss became {loss} at step {step} (epoch {m.good.epoch + 1}) "
        f"with learning rate {_last_lr(run.optimizer, step):g}"
    )
    return attrs.evolve(m, fresh=False, stopped="diverged", message=message)


def _record(run: _Run, m: Monitor, out: StepOutput) -> Monitor:
    """The monitor with `out.state`'s history row, or stopped if the row shows divergence."""
    entered = run.clock()
    row = _row(run, out)
    if not math.isfinite(row["train_loss"]) or (
        m.rows and row["train_loss"] > DIVERGENCE_FACTOR * max(m.rows[0]["train_loss"], 1.0)
    ):  # this update broke the params, or they are exploding (a huge lr in full-batch gd)
        return _diverged(run, m, row["train_loss"], out.state.step)
    row["seconds"] = entered - m.start - m.eval_seconds
    row["batch_loss"] = m.loss_sum / m.loss_rows
    m = attrs.evolve(
        m, good=copy_state(out.state), rows=m.rows + (row,), eval_seconds=m.eval_seconds + run.clock() - entered,
        fresh=True, loss_sum=0.0, loss_rows=0,
    )
    if run.dev is None or math.isnan(m.best) or _improved(run.monitor, row[run.monitor], m.best):
        m = attrs.evolve(m, best=row[run.monitor], best_params=m.good.params, since_best=0)
    else:
        m = attrs.evolve(m, since_best=m.since_best + 1)
    if run.patience is not None and m.since_best >= run.patience:
        message = (
            f"stopped early at step {out.state.step}: {run.monitor} did not improve for {run.patience} "
            f"evaluations; best {run.monitor} = {m.best:.4f}"
        )
        return attrs.evolve(m, stopped="early_stop", message=message)
    return _completed_at_the_end(run, m)


def _completed_at_the_end(run: _Run, m: Monitor) -> Monitor:
    """`m`, stopped as "completed" when its state made the run's last update."""
    if m.state.step < run.last:
        return m
    return attrs.evolve(m, stopped="completed", message=f"completed {count(run.epochs, 'epoch')}")


def _improved(monitor: str, value: float, best: float) -> bool:
    return value > best if monitor == "dev_acc" else value < best


def _row(run: _Run, out: StepOutput) -> dict:
    """One history row for `out.state` (see `fit` for the columns; `seconds` is the monitor's)."""
    state = out.state
    params = state.params
    X, y, w, rows = run.train_eval
    train_scan = scan(params, X, y, run.chunk, w=w, rows=rows)
    dev_scan = scan(params, *run.dev[:2], run.chunk, w=run.dev[2]) if run.dev is not None else None
    norms = [global_norm(layer) for layer in params.layers if tree_leaves(layer)]
    return {
        "step": state.step,
        "epoch": state.epoch,
        "lr": _last_lr(run.optimizer, state.step),
        "seconds": math.nan,
        "batch_loss": math.nan,
        "train_loss": train_scan.ce_sum / train_scan.rows,
        "train_acc": train_scan.correct / train_scan.rows,
        "dev_loss": dev_scan.ce_sum / dev_scan.rows if dev_scan is not None else math.nan,
        "dev_acc": dev_scan.correct / dev_scan.rows if dev_scan is not None else math.nan,
        **{f"grad_norm_{i}": g for i, g in enumerate(out.grad_norms, 1)},
        **{f"update_ratio_{i}": u / p for i, (u, p) in enumerate(zip(out.update_norms, norms), 1)},
        **{name: 1.0 - float(alive.mean()) for name, alive in zip(_dead_columns(params), train_scan.alive)},
    }


def _dead_columns(params: MLP) -> list[str]:
    """dead_frac_<i> for each layer declaring `relu_family`, i = the number of parameter layers
    before it."""
    names, owners = [], 0
    for layer in params.layers:
        owners += bool(tree_leaves(layer))
        if getattr(layer, "relu_family", False):
            names.append(f"dead_frac_{owners}")
    return names


def history_columns(params: MLP) -> list[str]:
    """The history's columns for `params`: i counts the layers with parameters (from 1)."""
    owners = range(1, sum(bool(tree_leaves(layer)) for layer in params.layers) + 1)
    return (
        ["step", "epoch", "lr", "seconds", "batch_loss", "train_loss", "train_acc", "dev_loss", "dev_acc"]
        + [f"grad_norm_{i}" for i in owners]
        + [f"update_ratio_{i}" for i in owners]
        + _dead_columns(params)
    )


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
    augment: Augmentation | Augment | None = None,
    opt_state: Any = None,
) -> FitResult:
    """Train `params` with `optimizer` for up to `epochs` epochs of mini-batches of `train`.

    rng: split three ways: the batch stream, the training rows the history evaluates, and the
        seed of in-step randomness (dropout masks, augmentation); the same seed and inputs give
        the same parameters and history, bit for bit (the seconds aside).
    train, dev: Datasets (anything with .X, .y), (X, y) pairs or (X, y, w) triples, X: (n, n_0)
        (a NumPy array, or a scipy.sparse matrix densified batch by batch; a full batch is the
        whole set, densified once an epoch), y: (n,) int labels
        or an (n, k) 0/1 multilabel matrix (see `fnn.nn`), w: (n,) row weights weighting every
        loss, gradient and score. Both are validated once here; dev is optional (no dev
        columns, no early stopping).
    batch_size: rows per update, or None / "full" for full-batch gradient descent.
    l2: the loss's weight penalty (l2/(2m)) Σ||W||², m the batch's rows.
    eval_every: record a history row every this many updates; rows are recorded at the end of
        every epoch in any case, except in full-batch training (one update per epoch), where
        eval_every alone decides (and the last update always has a row).
    patience: stop after this many evaluations in a row without a strict improvement of
        `monitor` ("dev_acc", higher is better, or "dev_loss", lower is better); None: never.
    train_eval_size: the train columns are measured on a fixed random subset of this many
        training rows (all rows when there are fewer), chosen once from rng, to keep evaluation
        cheap (gathered a chunk at a time, never copied whole); evaluations run `eval_chunk`
        rows at a time, without dropout.
    callback: called with each history row (a dict) as it is recorded, e.g. a progress bar.
    clock: the time source for the `seconds` column (time.perf_counter).
    checkpoint: called with the Monitor after each recorded row (its `good` is a copy of the
        state of that row): everything `resume` needs (see `fnn.checkpoint` for a file form).
    resume: such a Monitor: training continues from its state, history and best params, and
        ends with the same bits as a run never interrupted (same rng, data and arguments).
    opt_state: the optimizer state to start from, e.g. an earlier FitResult's
        `state.opt_state` of these params under this optimizer: the run continues its moments
        and update count (scikit-learn's partial_fit); None: `optimizer.init`.
    augment: an `fnn.augment.Augmentation`, or any transform `(rng, X) -> X'`, applied to
        every training batch before its step, drawing from the step's own stream
        (`fnn.training.augment_rng`); the history's train and dev columns, evaluation and
        prediction always see the rows as they are.

    History columns, one row per evaluation (i counts the layers with parameters, from 1):
        step, epoch            updates applied and epochs completed
        lr                     the learning rate of the last update (NaN if the optimizer has none)
        seconds                training time so far, evaluations excluded
        batch_loss             the mean loss J of the batches since the previous row, each
                               weighted by its rows, l2 term, dropout and augmentation included:
                               what the optimizer descended (scikit-learn's loss_curve_)
        train_loss, train_acc  mean cross-entropy (no l2 term) and accuracy on the train subset
        dev_loss, dev_acc      the same on the dev set (NaN without one)
        grad_norm_<i>          the gradient norm of parameter layer i on the last batch
        update_ratio_<i>       ||Δθ_i|| / ||θ_i|| of the last update (θ_i after it)
        dead_frac_<i>          for each ReLU-family layer after parameter layer i: the fraction
                               of its units that are 0 for every train-subset row

    A non-finite training loss stops the run at once: `stopped` is "diverged", the message names
    the step and learning rate, and `state` holds the last evaluated parameters (whose loss was
    finite). So does a training loss above DIVERGENCE_FACTOR times the first evaluation's (at
    least 1).
    """
    X, y, w = _labelled(params, "train", train)
    dev = _labelled(params, "dev", dev) if dev is not None else None
    l2 = checks.non_negative_float("l2", l2)
    epochs = checks.positive_int("epochs", epochs)
    eval_every = checks.optional_positive_int("eval_every", eval_every)
    patience = checks.optional_positive_int("patience", patience)
    train_eval_size = checks.positive_int("train_eval_size", train_eval_size)
    eval_chunk = checks.positive_int("eval_chunk", eval_chunk)
    checks.one_of("monitor", monitor, MONITORS)
    augment = _checked_augment(augment, dense(X[:1]))
    if patience is not None and dev is None:
        raise ValueError("patience needs a dev set to monitor: pass dev=(X_dev, y_dev) or patience=None")

    stream_rng, subset_rng, seed_rng = rng.spawn(3)
    per_epoch = steps_per_epoch(X.shape[0], batch_size)
    n = X.shape[0]
    rows = np.sort(subset_rng.choice(n, size=train_eval_size, replace=False)) if n > train_eval_size else None
    run = _Run(
        optimizer, l2, epochs, epochs * per_epoch, eval_every, per_epoch == 1,
        (X, y, w, rows), dev, eval_chunk,
        monitor, patience, clock, augment,
    )
    seed = int(seed_rng.integers(2**63))
    # the stream less the batches a resumed state has seen, led by the first monitor
    stream = batches(stream_rng, X, y, batch_size, epochs, skip=resume.good.step if resume else 0, w=w)
    first = functools.partial(_first_monitor, run, params, seed, opt_state, resume, clock)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported instead
        monitors = toolz.accumulate(functools.partial(_fold_step, run), _led_by(first, stream))
        final = toolz.first(m for m in map(functools.partial(_report, callback, checkpoint), monitors) if m.stopped)
    import pandas as pd  # here, not at the top: the core loads numpy, attrs and toolz only

    history = pd.DataFrame(list(final.rows), columns=history_columns(params))
    best_params = final.best_params if final.rows else final.good.params
    return FitResult(final.good, best_params, history, final.stopped, final.message)


def _led_by(first: Callable[[], Monitor], stream):
    """first(), then the stream's batches. The monitor is made here and bound to no name (as
    accumulate's `initial`, or in a list given to `toolz.cons`, it would stay referenced to the
    end), so its state copy is freed as soon as the first row replaces it."""
    yield first()
    yield from stream


def _first_monitor(run: _Run, params: MLP, seed: int, opt_state, resume: Monitor | None, clock) -> Monitor:
    """The fold's first accumulator: a fresh state of `params`, or `resume`'s last good state
    (completed at once if it was checkpointed at the run's end)."""
    if resume is not None:
        return _completed_at_the_end(run, attrs.evolve(
            resume, state=copy_state(resume.good), start=clock() - resume.rows[-1]["seconds"], eval_seconds=0.0,
            fresh=False, stopped=None, message="",
        ))
    state0 = init_state(params, run.optimizer, seed=seed, opt_state=opt_state)
    return Monitor(state=state0, good=copy_state(state0), best_params=params, start=clock())


def _report(callback, checkpoint, m: Monitor) -> Monitor:
    """When `m` just recorded a row: hand the row to `callback` and `m` to `checkpoint`. Returns m."""
    if m.fresh and callback is not None:
        callback(dict(m.rows[-1]))
    if m.fresh and checkpoint is not None:
        checkpoint(m)
    return m
