"""Training as a fold: `train_step(state, batch) -> state` over a lazy stream of mini-batches.

    opt = sgd(0.1, momentum=0.9)
    step = functools.partial(train_step, optimizer=opt, l2=0.0)
    final = toolz.reduce(step, batches(rng, X, y, batch_size=128, epochs=5), init_state(params, opt))

`fit` runs the same operator under `toolz.accumulate`, so it can watch the stream of states:
every `eval_every` steps and at each epoch's end it records a row of the history (losses,
accuracies, learning rate, seconds, and per-layer health: gradient norms, update ratios, dead
ReLU fractions), stops early when the monitored dev metric has not improved for `patience`
evaluations, and stops at once when the loss stops being finite (a diverging learning rate).
`train(rng, config, train_set, dev_set)` builds the network and the optimizer from a
`TrainConfig` and calls `fit`.

Batches are slices `perm[s:s+bs]` of one `rng.permutation(n)` per epoch, gathered by fancy
indexing (`X[idx]`), so each row is copied at most once per epoch and the training set is never
copied whole. The data set is validated once at the start of `fit`; the loop then calls
`value_and_grads(..., check=False)` and computes in the params' dtype (float32 by default).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np
import pandas as pd
import toolz

from fnn.nn import _activations, _check_inputs, _check_l2, l2_penalty, log_softmax, value_and_grads
from fnn.optim import Optimizer, adam, apply_updates, constant, cosine, gd, sgd, step_decay
from fnn.params import MLP, init
from fnn.tree import global_norm

MONITORS = ("dev_acc", "dev_loss")
OPTIMIZERS = ("gd", "sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")


@attrs.frozen(eq=False)
class TrainState:
    """Everything the fold carries: params (MLP), the optimizer's state, updates applied so far
    (`step`) and epochs completed so far (`epoch`)."""

    params: MLP
    opt_state: Any
    step: int = 0
    epoch: int = 0


@attrs.frozen(eq=False)
class Batch:
    """One mini-batch: X: (b, n_0) in the params' dtype, y: (b,) int; `end` marks the last
    batch of an epoch."""

    X: np.ndarray
    y: np.ndarray
    end: bool


@attrs.frozen(eq=False)
class FitResult:
    """What `fit` returns.

    state: the final TrainState; after a divergence, the last state whose loss was finite.
    best_params: the params at the history's best row for the monitored dev metric (the final
        params when there is no dev set).
    history: pandas DataFrame, one row per evaluation (see `fit`).
    stopped: "completed", "early_stop" or "diverged"; message: a sentence saying why, naming
        the step and learning rate when the loss diverged.
    """

    state: TrainState
    best_params: MLP
    history: pd.DataFrame
    stopped: str
    message: str


# ---------------------------------------------------------------- the batch stream


def _batch_size(batch_size, n: int) -> int | None:
    """None for full-batch training (None, "full", or at least n rows), else the int size."""
    if batch_size is None or batch_size == "full":
        return None
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, None or "full", got {batch_size!r}')
    return None if batch_size >= n else int(batch_size)


def steps_per_epoch(n: int, batch_size) -> int:
    """⌈n / batch_size⌉ updates per epoch (the last batch may be smaller); 1 for full batch."""
    size = _batch_size(batch_size, n)
    return 1 if size is None else -(-n // size)


def epoch_indices(rng: np.random.Generator, n: int, batch_size: int) -> Iterator[np.ndarray]:
    """One epoch's row indices: slices perm[s:s+batch_size] of perm = rng.permutation(n).

    Every index in 0..n-1 appears exactly once; the last slice holds the n mod batch_size
    leftover rows when batch_size does not divide n.
    """
    perm = rng.permutation(n)
    return (perm[s : s + batch_size] for s in range(0, n, batch_size))


def _epoch_batches(rng, X, y, batch_size) -> Iterator[Batch]:
    if batch_size is None:  # full batch: the arrays themselves, no shuffle and no copy
        return iter([Batch(X, y, end=True)])
    slices = list(epoch_indices(rng, X.shape[0], batch_size))
    last = len(slices) - 1
    return (Batch(X[idx], y[idx], end=i == last) for i, idx in enumerate(slices))


def batches(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, batch_size, epochs: int) -> Iterator[Batch]:
    """A lazy stream of `epochs` epochs of mini-batches of (X: (n, n_0), y: (n,)).

    batch_size: an int, or None / "full" for full-batch gradient descent (one batch per epoch,
    the arrays themselves). Each epoch draws a fresh permutation from `rng`, so the same seed
    gives the same stream. Only the current batch is materialised, and each epoch's permutation
    is drawn when the epoch begins.
    """
    size = _batch_size(batch_size, X.shape[0])
    return toolz.concat(_epoch_batches(rng, X, y, size) for _ in range(epochs))


# ---------------------------------------------------------------- one step


@attrs.frozen(eq=False)
class _StepOutput:
    """A state plus what produced it: loss and grads at the previous params, the updates applied."""

    state: TrainState
    loss: float
    grads: MLP
    updates: MLP
    end: bool


def init_state(params: MLP, optimizer: Optimizer) -> TrainState:
    """The fold's starting point: step 0, epoch 0, a fresh optimizer state."""
    return TrainState(params=params, opt_state=optimizer.init(params))


def _advance(state: TrainState, batch: Batch, optimizer: Optimizer, l2: float) -> _StepOutput:
    loss, grads = value_and_grads(state.params, batch.X, batch.y, l2, check=False)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new = TrainState(
        params=apply_updates(state.params, updates),
        opt_state=opt_state,
        step=state.step + 1,
        epoch=state.epoch + batch.end,
    )
    return _StepOutput(new, loss, grads, updates, batch.end)


def train_step(state: TrainState, batch: Batch, optimizer: Optimizer, l2: float = 0.0) -> TrainState:
    """One update on one batch: g = ∇J(θ; batch), (u, s) = optimizer.update(g, s, θ), θ := θ + u.

    Pure: returns a new TrainState and leaves `state` and `batch` untouched. The inputs are not
    validated (they were, once, when the data set was): batch.X must already be in the params'
    dtype. Bind the optimizer and l2 to get the fold's binary operator:
    `toolz.reduce(partial(train_step, optimizer=opt, l2=l2), batches(...), init_state(params, opt))`.
    """
    return _advance(state, batch, optimizer, l2).state


# ---------------------------------------------------------------- evaluation


@attrs.frozen(eq=False)
class _Scan:
    """Totals over an evaluation set: summed cross-entropy, correct count, rows, and for each
    hidden layer a bool (n_l,) mask of units active (> 0) for at least one row."""

    ce_sum: float
    correct: int
    rows: int
    alive: tuple[np.ndarray, ...]


def _scan_chunk(params: MLP, X: np.ndarray, y: np.ndarray) -> _Scan:
    outputs = _activations(params.layers, X)
    logits = outputs[-1]
    ce = -log_softmax(logits)[np.arange(X.shape[0]), y]
    alive = tuple((A > 0).any(axis=0) for A in outputs[1:-1])
    return _Scan(float(ce.sum()), int((logits.argmax(axis=1) == y).sum()), X.shape[0], alive)


def _merge(a: _Scan, b: _Scan) -> _Scan:
    alive = tuple(np.logical_or(p, q) for p, q in zip(a.alive, b.alive))
    return _Scan(a.ce_sum + b.ce_sum, a.correct + b.correct, a.rows + b.rows, alive)


def _scan(params: MLP, X: np.ndarray, y: np.ndarray, chunk: int) -> _Scan:
    """One pass over (X, y) in chunks of `chunk` rows, so memory stays flat for any n."""
    return toolz.reduce(
        _merge, (_scan_chunk(params, X[s : s + chunk], y[s : s + chunk]) for s in range(0, X.shape[0], chunk))
    )


def evaluate(params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, chunk: int = 8192) -> tuple[float, float]:
    """(loss, accuracy) of the whole set X: (n, n_0), y: (n,) int, computed `chunk` rows at a time.

    loss = mean cross-entropy + (l2/(2n)) Σ||W||², the same value as `fnn.nn.loss` on the whole
    set, but memory grows with `chunk`, not n. accuracy = fraction of rows with argmax = y.
    """
    X, y = _check_inputs(params, X, y)
    l2 = _check_l2(l2)
    scan = _scan(params, X, y, _check_count("chunk", chunk))
    return scan.ce_sum / scan.rows + l2_penalty(params, l2, scan.rows), scan.correct / scan.rows


# ---------------------------------------------------------------- fit


def _arrays(name: str, data) -> tuple[np.ndarray, np.ndarray]:
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


def _check_count(name: str, value, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        expected = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def history_columns(n_layers: int) -> list[str]:
    """The history's columns for a network of `n_layers` Dense layers (layers numbered from 1)."""
    layers = range(1, n_layers + 1)
    return (
        ["step", "epoch", "lr", "seconds", "train_loss", "train_acc", "dev_loss", "dev_acc"]
        + [f"grad_norm_{l}" for l in layers]
        + [f"update_ratio_{l}" for l in layers]
        + [f"dead_frac_{l}" for l in layers[:-1]]
    )


def _record(out: _StepOutput, optimizer, train_eval, dev, chunk: int, seconds: float) -> dict:
    """One history row for the state in `out` (see `fit` for the columns)."""
    params = out.state.params
    train_scan = _scan(params, *train_eval, chunk)
    dev_scan = _scan(params, *dev, chunk) if dev is not None else None
    layers = range(len(params.layers))
    return {
        "step": out.state.step,
        "epoch": out.state.epoch,
        "lr": _last_lr(optimizer, out.state),
        "seconds": seconds,
        "train_loss": train_scan.ce_sum / train_scan.rows,
        "train_acc": train_scan.correct / train_scan.rows,
        "dev_loss": dev_scan.ce_sum / dev_scan.rows if dev_scan is not None else math.nan,
        "dev_acc": dev_scan.correct / dev_scan.rows if dev_scan is not None else math.nan,
        **{f"grad_norm_{l + 1}": global_norm(out.grads.layers[l]) for l in layers},
        **{
            f"update_ratio_{l + 1}": global_norm(out.updates.layers[l].W) / global_norm(params.layers[l].W)
            for l in layers
        },
        **{f"dead_frac_{l + 1}": 1.0 - float(alive.mean()) for l, alive in enumerate(train_scan.alive)},
    }


def _last_lr(optimizer: Optimizer, state: TrainState) -> float:
    """The learning rate the update that produced `state` used (NaN if the optimizer has none)."""
    return optimizer.schedule(state.step - 1) if optimizer.schedule is not None else math.nan


def _diverged(loss: float, state: TrainState, good: TrainState, optimizer) -> str:
    """The message for a non-finite loss seen at `state`, one update after `good`."""
    return (
        f"diverged: the training loss became {loss} at step {state.step} (epoch {good.epoch + 1}) "
        f"with learning rate {_last_lr(optimizer, state):g}; returning the parameters after step "
        f"{good.step}, the last with a finite loss"
    )


def _improved(monitor: str, value: float, best: float) -> bool:
    return value > best if monitor == "dev_acc" else value < best


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
) -> FitResult:
    """Train `params` with `optimizer` for up to `epochs` epochs of mini-batches of `train`.

    rng: shuffles the batches and picks the training rows the history evaluates; the same seed
        and inputs give the same parameters and history, bit for bit (the seconds aside).
    train, dev: Datasets (anything with .X, .y) or (X, y) pairs, X: (n, n_0), y: (n,) int.
        Both are validated once here; dev is optional (no dev columns, no early stopping).
    batch_size: rows per update, or None / "full" for full-batch gradient descent.
    l2: the loss's weight penalty (l2/(2m)) Σ||W||², m the batch's rows.
    eval_every: record a history row every this many updates; rows are recorded at the end of
        every epoch in any case.
    patience: stop after this many evaluations in a row without a strict improvement of
        `monitor` ("dev_acc", higher is better, or "dev_loss", lower is better); None: never.
    train_eval_size: the train columns are measured on a fixed random subset of this many
        training rows (all rows when there are fewer), chosen once from rng, to keep evaluation
        cheap; evaluations run `eval_chunk` rows at a time.
    callback: called with each history row (a dict) as it is recorded, e.g. a progress bar.
    clock: the time source for the `seconds` column (time.perf_counter).

    History columns, one row per evaluation:
        step, epoch            updates applied and epochs completed
        lr                     the learning rate of the last update (NaN if the optimizer has none)
        seconds                training time so far, evaluations excluded
        train_loss, train_acc  mean cross-entropy (no l2 term) and accuracy on the train subset
        dev_loss, dev_acc      the same on the dev set (NaN without one)
        grad_norm_<l>          sqrt(||dW_l||² + ||db_l||²) on the last batch, layers l = 1..L
        update_ratio_<l>       ||ΔW_l|| / ||W_l|| of the last update (W_l after it)
        dead_frac_<l>          hidden layers: fraction of units that are 0 for every train-subset row

    A non-finite training loss stops the run at once: `stopped` is "diverged", the message names
    the step and learning rate, and `state` holds the last parameters whose loss was finite
    (NaNs propagate through the matmuls, so a finite loss certifies finite parameters).
    """
    X, y = _check_inputs(params, *_arrays("train", train))
    dev = _check_inputs(params, *_arrays("dev", dev)) if dev is not None else None
    l2 = _check_l2(l2)
    epochs = _check_count("epochs", epochs)
    eval_every = _check_count("eval_every", eval_every, allow_none=True)
    patience = _check_count("patience", patience, allow_none=True)
    train_eval_size = _check_count("train_eval_size", train_eval_size)
    eval_chunk = _check_count("eval_chunk", eval_chunk)
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {MONITORS}, got {monitor!r}")
    if patience is not None and dev is None:
        raise ValueError("patience needs a dev set to monitor: pass dev=(X_dev, y_dev) or patience=None")

    stream_rng, subset_rng = rng.spawn(2)
    n = X.shape[0]
    if n > train_eval_size:
        rows = np.sort(subset_rng.choice(n, size=train_eval_size, replace=False))
        train_eval = (X[rows], y[rows])
    else:
        train_eval = (X, y)

    state0 = init_state(params, optimizer)
    outputs = toolz.accumulate(
        lambda out, batch: _advance(out.state, batch, optimizer, l2),
        batches(stream_rng, X, y, batch_size, epochs),
        _StepOutput(state0, 0.0, None, None, False),
    )
    history, stopped, message = [], "completed", f"completed {epochs} epochs"
    # good: the latest state whose loss is known to be finite; last: the latest state.
    good = last = state0
    best, best_params, since_best = math.nan, params, 0
    start, eval_seconds = clock(), 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is reported below instead
        for out in toolz.drop(1, outputs):  # the first output is the starting point
            if not math.isfinite(out.loss):  # the loss at `last`, the params this step started from
                stopped, message = "diverged", _diverged(out.loss, last, good, optimizer)
                break
            good, last = last, out.state
            if not (out.end or (eval_every and out.state.step % eval_every == 0)):
                continue
            eval_start = clock()
            row = _record(out, optimizer, train_eval, dev, eval_chunk, eval_start - start - eval_seconds)
            if not math.isfinite(row["train_loss"]):  # this update broke the params
                stopped, message = "diverged", _diverged(row["train_loss"], out.state, good, optimizer)
                break
            good = out.state
            history.append(row)
            if callback is not None:
                callback(dict(row))
            eval_seconds += clock() - eval_start
            if dev is None or math.isnan(best) or _improved(monitor, row[monitor], best):
                best, best_params, since_best = row[monitor], out.state.params, 0
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    stopped = "early_stop"
                    message = (
                        f"stopped early at step {out.state.step}: {monitor} did not improve for {patience} "
                        f"evaluations; best {monitor} = {best:.4f}"
                    )
                    break
    if stopped == "diverged" and not history:
        best_params = good.params
    frame = pd.DataFrame(history, columns=history_columns(len(params.layers)))
    return FitResult(state=good, best_params=best_params, history=frame, stopped=stopped, message=message)


# ---------------------------------------------------------------- configuration


def _count_field(allow_none: bool = False):
    """An attrs validator: a positive int (or None when allowed), as `fit` checks its counts."""
    return lambda instance, attribute, value: _check_count(attribute.name, value, allow_none)


def _non_negative(instance, attribute, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _positive(instance, attribute, value):
    _non_negative(instance, attribute, value)
    if value == 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _fraction(instance, attribute, value):
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _one_of(choices):
    def check(instance, attribute, value):
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {choices}, got {value!r}")

    return check


def _hidden_sizes(instance, attribute, value):
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value):
        raise ValueError(f"hidden must be a tuple of positive ints (one per hidden layer), got {value!r}")


def _batch_size_field(instance, attribute, value):
    _batch_size(value, n=math.inf)  # raises on anything but a positive int, None or "full"


@attrs.frozen
class TrainConfig:
    """The hyper-parameters of one training run; the defaults are what `fnn train` runs with.

    hidden: widths of the hidden layers, e.g. (128,) for 784-128-10.
    epochs: the most epochs to run (early stopping may end sooner).
    batch_size: rows per update, or None / "full" for full-batch gradient descent.
    optimizer: "gd", "sgd" (with momentum / nesterov) or "adam"; lr its (peak) learning rate.
    schedule: "constant", "step" (×0.1 after each third of the run) or "cosine" (down to 0
        at the last epoch).
    l2: weight penalty (l2/(2m)) Σ||W||².
    patience: early stopping after this many evaluations without improving `monitor`
        ("dev_acc" or "dev_loss"); None turns it off.
    eval_every: a history row every this many updates, besides each epoch's end; None: epochs only.
    seed: the run's seed (the CLI builds `np.random.default_rng(seed)` from it).
    """

    hidden: tuple[int, ...] = attrs.field(default=(128,), converter=tuple, validator=_hidden_sizes)
    epochs: int = attrs.field(default=30, validator=_count_field())
    batch_size: int | str | None = attrs.field(default=128, validator=_batch_size_field)
    optimizer: str = attrs.field(default="sgd", validator=_one_of(OPTIMIZERS))
    lr: float = attrs.field(default=0.2, validator=_positive)
    momentum: float = attrs.field(default=0.9, validator=_fraction)
    nesterov: bool = False
    l2: float = attrs.field(default=0.3, validator=_non_negative)
    schedule: str = attrs.field(default="cosine", validator=_one_of(SCHEDULES))
    patience: int | None = attrs.field(default=None, validator=_count_field(allow_none=True))
    monitor: str = attrs.field(default="dev_acc", validator=_one_of(MONITORS))
    eval_every: int | None = attrs.field(default=None, validator=_count_field(allow_none=True))
    seed: int = 0


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> Optimizer:
    """The optimizer `config` names, its learning rate following `config.schedule` over the
    run's `config.epochs * steps_per_epoch` updates."""
    total = config.epochs * steps_per_epoch
    lr = {
        "constant": lambda: constant(config.lr),
        "step": lambda: step_decay(config.lr, every=max(1, -(-total // 3)), factor=0.1),  # 2 drops
        "cosine": lambda: cosine(config.lr, total=total),
    }[config.schedule]()
    if config.optimizer == "gd":
        return gd(lr)
    if config.optimizer == "sgd":
        return sgd(lr, config.momentum, config.nesterov)
    return adam(lr)


def train(
    rng: np.random.Generator,
    config: TrainConfig,
    train_set,
    dev_set=None,
    callback: Callable[[dict], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResult:
    """Build a He-initialised network of widths (n_0, *config.hidden, k) and `fit` it.

    train_set, dev_set: Datasets or (X, y) pairs. k is the number of class names of a Dataset,
    else max(y) + 1 of the training labels. rng is split in two: one stream initialises the
    weights, the other drives `fit`. callback and clock are passed on to `fit`.
    """
    X, y = _arrays("train_set", train_set)
    classes = len(train_set.class_names) if hasattr(train_set, "class_names") else int(np.max(y)) + 1
    init_rng, fit_rng = rng.spawn(2)
    params = init(init_rng, (X.shape[1], *config.hidden, classes))
    optimizer = make_optimizer(config, steps_per_epoch(X.shape[0], config.batch_size))
    return fit(
        fit_rng,
        params,
        optimizer,
        train_set,
        dev_set,
        epochs=config.epochs,
        batch_size=config.batch_size,
        l2=config.l2,
        eval_every=config.eval_every,
        patience=config.patience if dev_set is not None else None,
        monitor=config.monitor,
        callback=callback,
        clock=clock,
    )
