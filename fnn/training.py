"""Training as a fold: `train_step(state, batch) -> state` over a lazy stream of mini-batches.

    opt = sgd(0.1, momentum=0.9)
    step = functools.partial(train_step, optimizer=opt, l2=0.0, donate=True)
    final = toolz.reduce(step, batches(rng, X, y, batch_size=128, epochs=5), init_state(params, opt))

The state holds the params as one flat buffer (`fnn.tree.ravel`) with `.params` its view as a
network, and the optimizer's state over that buffer, so each update is a few NumPy calls on
whole buffers. `train_step` is pure: it never writes into an array its caller passed. A caller
that will not use a state again may *donate* it (`donate=True`, JAX's buffer donation): the
step then writes the new state into the old one's buffers instead of new memory. A fold donates
safely, since each state is used once; keep no reference to a donated state (copy what you
want to keep: `fnn.copy_state(state)`).

Batches are slices `perm[s:s+bs]` of one permutation per epoch, gathered (`X[idx]`), so each
row is copied at most once per epoch and the training set is never copied whole. Each epoch's
permutation comes from its own generator, derived up front from `rng`, so the stream never
depends on when other draws happen, and a resumed stream skips batches without gathering them.

Randomness inside a step comes from the state, not from a shared Generator: step t of a state
seeded `seed` draws Dropout's masks from `np.random.default_rng((seed, t))` and the batch's
augmentation (`augment=`, see `fnn.augment`) from that seed sequence's first child,
`SeedSequence((seed, t), spawn_key=(0,))`, a stream of its own. So `train_step` stays a pure
binary operator, two runs give the same bits, and a saved state resumes exactly.

`evaluate` scans a whole set in chunks through the one forward pass of `fnn.nn`. `fnn.fit`
(in `fnn/fitting.py`) runs the fold while recording a history and stopping early.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import toolz

from fnn import checks
from fnn.nn import (
    backprop,
    check_batch,
    check_finite,
    check_weights,
    check_labels,
    eval_rows,
    first_layer_screens_inputs,
    forward_pass,
    l2_penalty,
    mass,
    row_losses,
)
from fnn.optim import Optimizer, apply_updates
from fnn.params import MLP
from fnn.tree import RavelSpec, global_norm, ravel, ravel_spec, tree_leaves, tree_map, unravel

# An augmentation: (rng, X: (m, n_0)) -> X' of the same shape and dtype, X untouched (`fnn.augment`).
Augment = Callable[[np.random.Generator, np.ndarray], np.ndarray]
AUGMENT_STREAM = 0  # the child of a step's seed sequence that augmentation draws from


@attrs.frozen(eq=False)
class TrainState:
    """Everything the fold carries: the params as one buffer `flat` (spec.size,) and the `spec`
    that views it as a network, the optimizer's state over `flat`, updates applied so far
    (`step`), epochs completed so far (`epoch`) and the `seed` of in-step randomness (dropout,
    augmentation).
    `params` is the network whose arrays are views of `flat`."""

    flat: np.ndarray
    spec: RavelSpec
    opt_state: Any
    step: int = 0
    epoch: int = 0
    seed: int = 0
    params: MLP = attrs.field(init=False, default=attrs.Factory(lambda s: unravel(s.spec, s.flat), takes_self=True))


@attrs.frozen(eq=False)
class Batch:
    """One mini-batch: X: (b, n_0) in the params' dtype, y: (b,) int (or (b, k) multilabel
    0/1); `end` marks the last batch of an epoch; w: (b,) row weights, or None (all 1)."""

    X: np.ndarray
    y: np.ndarray
    end: bool
    w: np.ndarray | None = None


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


def _epoch_batches(rng, X, y, w, batch_size, skip: int = 0) -> Iterator[Batch]:
    """One epoch's batches, less its first `skip` (never gathered)."""
    if batch_size is None:  # full batch: the arrays themselves, no shuffle and no copy
        return iter([Batch(dense(X), y, end=True, w=w)][skip:])
    slices = list(epoch_indices(rng, X.shape[0], batch_size))
    last = len(slices) - 1
    return (
        Batch(_gather(X, idx), y[idx], end=i == last, w=None if w is None else w[idx])
        for i, idx in enumerate(slices[skip:], skip)
    )


def _gather(X, idx: np.ndarray) -> np.ndarray:
    """X[idx] along the rows, as a dense array. mode="clip": the indices are a permutation's, so
    never clipped; numpy's default "raise" mode first gathers into a scratch copy (2.5x slower).
    A scipy.sparse X (anything with `toarray`) is densified here, one batch at a time."""
    if hasattr(X, "toarray"):
        return X[idx].toarray()
    return np.take(X, idx, axis=0, mode="clip")


def _epoch_rng(base: np.random.SeedSequence, epoch: int) -> np.random.Generator:
    """Epoch `epoch`'s generator: the child `base.spawn` would give at that position, built
    directly, so deriving it neither depends on nor changes any other state."""
    return np.random.default_rng(
        np.random.SeedSequence(base.entropy, spawn_key=(*base.spawn_key, epoch), pool_size=base.pool_size)
    )


def batches(
    rng: np.random.Generator, X: np.ndarray, y: np.ndarray, batch_size, epochs: int, skip: int = 0,
    w: np.ndarray | None = None,
) -> Iterator[Batch]:
    """A lazy stream of `epochs` epochs of mini-batches of (X: (n, n_0), y: (n,)) and, when
    given, row weights w: (n,).

    batch_size: an int, or None / "full" for full-batch gradient descent (one batch per epoch,
    the arrays themselves). One child generator is spawned from `rng` now; epoch e shuffles with
    the e-th generator derived from it, so the same seed gives the same stream. Only the current
    batch is materialised, and each epoch's permutation is drawn when the epoch begins.
    skip: leave out the stream's first `skip` batches (a resumed run's), gathering none of them.
    """
    size = _batch_size(batch_size, X.shape[0])
    per_epoch = 1 if size is None else -(-X.shape[0] // size)
    base = rng.spawn(1)[0].bit_generator.seed_seq
    first, skip = divmod(checks.non_negative_int("skip", skip), per_epoch)
    return toolz.concat(
        _epoch_batches(_epoch_rng(base, e), X, y, w, size, skip if e == first else 0) for e in range(first, epochs)
    )


# ---------------------------------------------------------------- one step


@functools.cache
def _needs_rng(layer_types: tuple[type, ...]) -> bool:
    """Whether any of these layer classes draws random numbers (declares `uses_rng`, True when
    undeclared): a stack of none trains without a Generator (building one costs ~20 µs)."""
    return any(getattr(t, "uses_rng", True) for t in layer_types)


def step_rng(state: TrainState) -> np.random.Generator | None:
    """The Generator the layers of `state.params` draw from at step `state.step`:
    `default_rng((state.seed, state.step))`, or None when no layer draws random numbers."""
    if not _needs_rng(tuple(map(type, state.params.layers))):
        return None
    return np.random.default_rng((state.seed, state.step))


def augment_rng(state: TrainState) -> np.random.Generator:
    """The Generator a step's augmentation draws from at step `state.step`: the first child of
    the seed sequence of `step_rng`'s, `SeedSequence((seed, step), spawn_key=(0,))`, so its
    numbers never overlap Dropout's."""
    return np.random.default_rng(np.random.SeedSequence((state.seed, state.step), spawn_key=(AUGMENT_STREAM,)))


def init_state(params: MLP, optimizer: Optimizer, seed: int = 0, opt_state: Any = None) -> TrainState:
    """The fold's starting point: the params copied into one buffer, step 0, epoch 0, a fresh
    optimizer state (or a copy of `opt_state`, one this optimizer made for params of this
    structure, to continue it); `seed` seeds the in-step randomness (dropout masks) of every step."""
    spec = ravel_spec(params)
    flat = ravel(spec, params)
    if opt_state is None:
        opt_state = optimizer.init(flat)
    else:
        opt_state = tree_map(lambda x: x.copy() if isinstance(x, np.ndarray) else x, opt_state)  # ours to donate
    return TrainState(flat=flat, spec=spec, opt_state=opt_state, seed=seed)


def copy_state(state: TrainState) -> TrainState:
    """A state with its own copies of `state`'s arrays (to keep while the original is donated)."""
    opt_state = tree_map(lambda x: x.copy() if isinstance(x, np.ndarray) else x, state.opt_state)  # counts stay ints
    return attrs.evolve(state, flat=state.flat.copy(), opt_state=opt_state)


@attrs.frozen(eq=False)
class StepOutput:
    """A state plus what produced it: the loss at the params it started from and, when the step
    was asked to `observe`, the norms ||g_i|| of the gradient and ||u_i|| of the update of each
    layer i with parameters (in order), taken before any buffer was reused."""

    state: TrainState
    loss: float
    grad_norms: tuple[float, ...] | None = None
    update_norms: tuple[float, ...] | None = None


def _layer_norms(tree: MLP) -> tuple[float, ...]:
    """||θ_i|| of each layer with parameters, in order."""
    return tuple(global_norm(layer) for layer in tree.layers if tree_leaves(layer))


def advance(
    state: TrainState, batch: Batch, optimizer: Optimizer, l2: float = 0.0, donate: bool = False,
    augment: Augment | None = None, observe: bool = False,
) -> StepOutput:
    """`train_step` keeping what it computed on the way (for `fit`'s history): with `observe`,
    the gradient's and the update's norms per layer, measured before a donated step reuses
    their buffers, so observing never costs a step its donation."""
    grads = np.empty(state.spec.size, state.spec.dtype)
    X = batch.X if augment is None else augment(augment_rng(state), batch.X)
    loss, g = backprop(state.params, X, batch.y, l2, step_rng(state), w=batch.w, spec=state.spec, flat=grads)
    grad_norms = _layer_norms(g) if observe else None
    updates, opt_state = optimizer.update(grads, state.opt_state, state.flat, donate=donate)
    update_norms = _layer_norms(unravel(state.spec, updates)) if observe else None
    new = TrainState(
        flat=apply_updates(state.flat, updates, donate=donate),
        spec=state.spec,
        opt_state=opt_state,
        step=state.step + 1,
        epoch=state.epoch + batch.end,
        seed=state.seed,
    )
    return StepOutput(new, loss, grad_norms, update_norms)


def train_step(
    state: TrainState, batch: Batch, optimizer: Optimizer, l2: float = 0.0, donate: bool = False,
    augment: Augment | None = None,
) -> TrainState:
    """One update on one batch: g = ∇J(θ; batch), (u, s) = optimizer.update(g, s, θ), θ := θ + u.

    augment: a transform `(rng, X) -> X'` of the batch's rows (`fnn.augment`), given
    `augment_rng(state)`: the gradient is that of the distorted batch; batch.X is not modified.

    Pure: returns a new TrainState and leaves `state` and `batch` untouched, unless `donate`:
    then the caller gives up `state` (uses none of its arrays again) and the new state is
    written into its buffers. Both give the same bits. The inputs are not validated (they were,
    once, when the data set was): batch.X must already be in the params' dtype. Bind the
    optimizer and l2 to get the fold's binary operator:
    `toolz.reduce(partial(train_step, optimizer=opt, l2=l2, donate=True), batches(...), init_state(params, opt))`.
    """
    return advance(state, batch, optimizer, l2, donate, augment).state


# ---------------------------------------------------------------- evaluation


@attrs.frozen(eq=False)
class Scan:
    """Totals over an evaluation set: summed cross-entropy, correct count, rows (each weighted
    by its row's weight when there are weights), and for each ReLU-family layer a bool (n,)
    mask of its units that were active (> 0) for some row."""

    ce_sum: float
    correct: float
    rows: float
    alive: tuple[np.ndarray, ...]  # one per layer declaring `relu_family`


def _scan_chunk(params: MLP, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, screen_from: int | None = None) -> Scan:
    """Totals of one chunk. screen_from: the chunk's first row in the whole set when X's
    finiteness is still to be checked, through the first Dense layer's output (see
    `fnn.nn.first_layer_screens_inputs`): one sum over (rows, n_1) instead of two passes over X."""
    if screen_from is None:
        outputs, _ = forward_pass(params, X)
    else:
        with np.errstate(invalid="ignore", over="ignore"):  # a bad X is reported just below, by row
            outputs, _ = forward_pass(params, X)
        if not np.isfinite(outputs[1].sum()):
            check_finite(X, screen_from)  # raises if X is to blame (else non-finite W or b, or a huge sum)
    logits = outputs[-1]
    check_labels(y, logits.shape[1])
    ce, hit = row_losses(logits, y)
    alive = tuple(
        A.max(axis=0) > 0 for layer, A in zip(params.layers, outputs[1:]) if getattr(layer, "relu_family", False)
    )
    if w is None:
        return Scan(float(ce.sum()), int(hit.sum()), X.shape[0], alive)
    return Scan(float(np.dot(w, ce)), float(w[hit].sum(dtype=np.float64)), mass(y, w), alive)


def _merge(a: Scan, b: Scan) -> Scan:
    alive = tuple(np.logical_or(p, q) for p, q in zip(a.alive, b.alive))
    return Scan(a.ce_sum + b.ce_sum, a.correct + b.correct, a.rows + b.rows, alive)


def scan(
    params: MLP, X: np.ndarray, y: np.ndarray, chunk: int = 8192, screen: bool = False, w: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> Scan:
    """One pass over validated (X, y) in chunks of at most `chunk` rows (fewer when a chunk's
    pass would pass `fnn.nn.EVAL_BYTES`, see `eval_rows`), so memory stays flat for any n.
    screen: X's finiteness is still to be checked, through the first layer's output.
    w: (n,) row weights (validated) or None. rows: the indices of the rows to score (sorted),
    gathered a chunk at a time, or None for every row. A scipy.sparse X is densified chunk by
    chunk."""
    with np.errstate(invalid="ignore", over="ignore"):  # measuring one row: a bad X is reported below
        chunk = eval_rows(params, dense(X[:1]), chunk)
    if rows is None:
        parts = ((X[s : s + chunk], y[s : s + chunk], None if w is None else w[s : s + chunk], s) for s in range(0, X.shape[0], chunk))
    else:
        parts = (
            (_gather(X, idx), y[idx], None if w is None else w[idx], None)
            for idx in (rows[s : s + chunk] for s in range(0, len(rows), chunk))
        )
    return toolz.reduce(
        _merge, (_scan_chunk(params, dense(Xc), yc, wc, first if screen else None) for Xc, yc, wc, first in parts)
    )


def dense(X) -> np.ndarray:
    """X as a NumPy array: a scipy.sparse block densified (it has `toarray`), else X itself."""
    return X.toarray() if hasattr(X, "toarray") else X


def evaluate(
    params: MLP, X: np.ndarray, y: np.ndarray, l2: float = 0.0, chunk: int = 8192, w: np.ndarray | None = None
) -> tuple[float, float]:
    """(loss, accuracy) of the whole set X: (n, n_0), y: (n,) int, computed `chunk` rows at a time.

    loss = mean cross-entropy + (l2/(2n)) Σ||W||², the same value as `fnn.nn.loss` on the whole
    set, but memory grows with `chunk`, not n. accuracy = fraction of rows with argmax = y.
    With row weights w: (n,), both are weighted means (n becomes Σw). Evaluation runs the
    layers without an rng (Dropout is the identity).
    """
    screen = first_layer_screens_inputs(params)  # then X's finiteness shows in the first layer's output
    X, y = check_batch(params, X, y, finite=not screen)
    w = check_weights(w, X.shape[0], X.dtype)
    l2 = checks.non_negative_float("l2", l2)
    totals = scan(params, X, y, checks.positive_int("chunk", chunk), screen, w)
    return totals.ce_sum / totals.rows + l2_penalty(params, l2, totals.rows), totals.correct / totals.rows
