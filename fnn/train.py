"""Training as a fold: `train_step(state, batch) -> state` over a lazy stream of mini-batches.

    opt = sgd(0.1, momentum=0.9)
    step = functools.partial(train_step, optimizer=opt, l2=0.0)
    final = toolz.reduce(step, batches(rng, X, y, batch_size=128, epochs=5), init_state(params, opt))

Batches are slices `perm[s:s+bs]` of one permutation per epoch, gathered (`X[idx]`, into a
buffer from `fnn.tree.new_buffer`), so each row is copied at most once per epoch and the
training set is never copied whole. (A once-per-epoch shuffled copy sliced contiguously moves
the same bytes plus a 188 MB write per Fashion-MNIST epoch, and a gathered batch is still in
cache when the first product reads it.) Each epoch's permutation comes from its own generator, derived up front from `rng`, so
the stream never depends on when other draws happen.

Randomness inside a step (Dropout's masks) comes from the state, not from a shared Generator:
step t of a state seeded `seed` uses `np.random.default_rng((seed, t))`. So `train_step` stays a
pure binary operator, two runs give the same bits, and a saved state resumes exactly.

`evaluate` scans a whole set in chunks through the one forward pass of `fnn.nn`. `fnn.fit`
(in `fnn/fit.py`) runs the fold while recording a history and stopping early.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np
import toolz

from fnn import checks
from fnn.layers import RELU_FAMILY, Dense, LeakyRelu, Relu, Sigmoid, Tanh
from fnn.nn import (
    backprop,
    check_batch,
    check_finite,
    check_labels,
    first_dense_screens_inputs,
    forward_pass,
    l2_penalty,
    log_softmax,
)
from fnn.optim import Optimizer, apply_updates
from fnn.params import MLP
from fnn.tree import new_buffer


@attrs.frozen(eq=False)
class TrainState:
    """Everything the fold carries: params (MLP), the optimizer's state, updates applied so far
    (`step`), epochs completed so far (`epoch`) and the `seed` of in-step randomness (dropout)."""

    params: MLP
    opt_state: Any
    step: int = 0
    epoch: int = 0
    seed: int = 0


@attrs.frozen(eq=False)
class Batch:
    """One mini-batch: X: (b, n_0) in the params' dtype, y: (b,) int; `end` marks the last
    batch of an epoch."""

    X: np.ndarray
    y: np.ndarray
    end: bool


# ---------------------------------------------------------------- the batch stream


def _batch_size(batch_size, n: int) -> int | None:
    """None for full-batch training (None, "full", or at least n rows), else the int size."""
    if batch_size is None or batch_size == "full":
        return None
    if not checks.is_int(batch_size) or batch_size < 1:
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
    return (Batch(_gather(X, idx), y[idx], end=i == last) for i, idx in enumerate(slices))


def _gather(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """X[idx] for a 2-D X, in a buffer from `fnn.tree.new_buffer` (no fresh pages per batch)."""
    if X.ndim != 2:
        return X[idx]
    out = new_buffer(idx.size * X.shape[1], X.dtype).reshape(idx.size, X.shape[1])
    # mode="clip": the indices are a permutation's, so never clipped; numpy's default "raise"
    # mode would first gather into a scratch copy to keep `out` intact on an error (2.5x slower)
    return np.take(X, idx, axis=0, out=out, mode="clip")


def _epoch_rng(base: np.random.SeedSequence, epoch: int) -> np.random.Generator:
    """Epoch `epoch`'s generator: the child `base.spawn` would give at that position, built
    directly, so deriving it neither depends on nor changes any other state."""
    return np.random.default_rng(
        np.random.SeedSequence(base.entropy, spawn_key=(*base.spawn_key, epoch), pool_size=base.pool_size)
    )


def batches(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, batch_size, epochs: int) -> Iterator[Batch]:
    """A lazy stream of `epochs` epochs of mini-batches of (X: (n, n_0), y: (n,)).

    batch_size: an int, or None / "full" for full-batch gradient descent (one batch per epoch,
    the arrays themselves). One child generator is spawned from `rng` now; epoch e shuffles with
    the e-th generator derived from it, so the same seed gives the same stream. Only the current
    batch is materialised, and each epoch's permutation is drawn when the epoch begins.
    """
    size = _batch_size(batch_size, X.shape[0])
    base = rng.spawn(1)[0].bit_generator.seed_seq
    return toolz.concat(_epoch_batches(_epoch_rng(base, e), X, y, size) for e in range(epochs))


# ---------------------------------------------------------------- one step


# Layers whose forward pass never draws random numbers: a stack of only these trains without a
# Generator (building one costs ~20 µs, 5% of a 784-128-10 step). Any other layer, Dropout or a
# user's own, gets one.
_DETERMINISTIC = (Dense, Relu, LeakyRelu, Tanh, Sigmoid)


@functools.cache
def _needs_rng(layer_types: tuple[type, ...]) -> bool:
    return not all(issubclass(t, _DETERMINISTIC) for t in layer_types)


def step_rng(state: TrainState) -> np.random.Generator | None:
    """The Generator the layers of `state.params` draw from at step `state.step`:
    `default_rng((state.seed, state.step))`, or None when no layer draws random numbers."""
    if not _needs_rng(tuple(map(type, state.params.layers))):
        return None
    return np.random.default_rng((state.seed, state.step))


def init_state(params: MLP, optimizer: Optimizer, seed: int = 0) -> TrainState:
    """The fold's starting point: step 0, epoch 0, a fresh optimizer state; `seed` seeds the
    in-step randomness (dropout masks) of every step."""
    return TrainState(params=params, opt_state=optimizer.init(params), seed=seed)


@attrs.frozen(eq=False)
class StepOutput:
    """A state plus what produced it: the loss and grads at the params it started from (those of
    `previous`) and the updates applied."""

    state: TrainState
    previous: TrainState
    loss: float
    grads: MLP
    updates: MLP
    end: bool


def advance(state: TrainState, batch: Batch, optimizer: Optimizer, l2: float = 0.0) -> StepOutput:
    """`train_step` keeping what it computed on the way (for `fit`'s history)."""
    loss, grads = backprop(state.params, batch.X, batch.y, l2, step_rng(state))
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new = attrs.evolve(
        state,
        params=apply_updates(state.params, updates),
        opt_state=opt_state,
        step=state.step + 1,
        epoch=state.epoch + batch.end,
    )
    return StepOutput(new, state, loss, grads, updates, batch.end)


def train_step(state: TrainState, batch: Batch, optimizer: Optimizer, l2: float = 0.0) -> TrainState:
    """One update on one batch: g = ∇J(θ; batch), (u, s) = optimizer.update(g, s, θ), θ := θ + u.

    Pure: returns a new TrainState and leaves `state` and `batch` untouched. The inputs are not
    validated (they were, once, when the data set was): batch.X must already be in the params'
    dtype. Bind the optimizer and l2 to get the fold's binary operator:
    `toolz.reduce(partial(train_step, optimizer=opt, l2=l2), batches(...), init_state(params, opt))`.
    """
    return advance(state, batch, optimizer, l2).state


# ---------------------------------------------------------------- evaluation


@attrs.frozen(eq=False)
class Scan:
    """Totals over an evaluation set: summed cross-entropy, correct count, rows, and for each
    ReLU-family layer a bool (n,) mask of its units that were active (> 0) for some row."""

    ce_sum: float
    correct: int
    rows: int
    alive: tuple[np.ndarray, ...]


def _scan_chunk(params: MLP, X: np.ndarray, y: np.ndarray, screen_from: int | None = None) -> Scan:
    """Totals of one chunk. screen_from: the chunk's first row in the whole set when X's
    finiteness is still to be checked, through the first Dense layer's output (see
    `fnn.nn.first_dense_screens_inputs`): one sum over (rows, n_1) instead of two passes over X."""
    if screen_from is None:
        outputs, _ = forward_pass(params, X)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # a bad X is reported just below, by row
            outputs, _ = forward_pass(params, X)
        if not np.isfinite(outputs[1].sum()):
            check_finite(X, screen_from)  # raises if X is to blame (else non-finite W or b, or a huge sum)
    logits = outputs[-1]
    check_labels(y, logits.shape[1])
    ce = -log_softmax(logits)[np.arange(X.shape[0]), y]
    alive = tuple(
        A.max(axis=0) > 0 for layer, A in zip(params.layers, outputs[1:]) if isinstance(layer, RELU_FAMILY)
    )
    return Scan(float(ce.sum()), int((logits.argmax(axis=1) == y).sum()), X.shape[0], alive)


def _merge(a: Scan, b: Scan) -> Scan:
    alive = tuple(np.logical_or(p, q) for p, q in zip(a.alive, b.alive))
    return Scan(a.ce_sum + b.ce_sum, a.correct + b.correct, a.rows + b.rows, alive)


def scan(params: MLP, X: np.ndarray, y: np.ndarray, chunk: int = 8192, screen: bool = False) -> Scan:
    """One pass over validated (X, y) in chunks of `chunk` rows, so memory stays flat for any n.
    screen: X's finiteness is still to be checked, through the first layer's output."""
    return toolz.reduce(
        _merge,
        (_scan_chunk(params, X[s : s + chunk], y[s : s + chunk], s if screen else None) for s in range(0, X.shape[0], chunk)),
    )


def evaluate(params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, chunk: int = 8192) -> tuple[float, float]:
    """(loss, accuracy) of the whole set X: (n, n_0), y: (n,) int, computed `chunk` rows at a time.

    loss = mean cross-entropy + (l2/(2n)) Σ||W||², the same value as `fnn.nn.loss` on the whole
    set, but memory grows with `chunk`, not n. accuracy = fraction of rows with argmax = y.
    Evaluation runs the layers without an rng (Dropout is the identity).
    """
    screen = first_dense_screens_inputs(params)  # then X's finiteness shows in the first layer's output
    X, y = check_batch(params, X, y, finite=not screen)
    l2 = checks.non_negative_float("l2", l2)
    totals = scan(params, X, y, checks.positive_int("chunk", chunk), screen)
    return totals.ce_sum / totals.rows + l2_penalty(params, l2, totals.rows), totals.correct / totals.rows
