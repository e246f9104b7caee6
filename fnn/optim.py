"""Optimizers as pairs of pure functions, in optax's shape.

An `Optimizer` is `init(params) -> opt_state` and `update(grads, opt_state, params, donate=False)
-> (updates, opt_state)`. Updates are *added* to the parameters by `apply_updates`, so a descent
step carries its own minus sign. The state is a pytree of records holding trees shaped like the
params (velocity, Adam moments) plus its own step count.

Each rule is written for one array and lifted to whole trees with `tree_map`. The training loop
hands the optimizer its params, gradients and state as flat buffers (`fnn.tree.ravel`), so a
rule runs once per update on the whole model; it works the same on any tree of arrays.

Donation (JAX's `donate_argnums`): by default nothing a caller passed is written to and every
result is a new array. With `donate=True` the caller gives up `grads` and `opt_state` (it uses
none of their arrays again), and the rules write their results into those arrays instead of new
memory; `apply_updates(params, updates, donate=True)` likewise adds into `params`. The same
inputs give the same bits either way. Bigger optimizers are chains of small transforms:

    gd(lr)             = scale_by_lr(lr)                         u = -lr_t g
    sgd(lr, momentum)  = chain(trace(momentum), scale_by_lr(lr)) v = μ v + g,  u = -lr_t v
    adam(lr, ...)      = chain(scale_by_adam(...), scale_by_lr(lr))

`sgd` and `adam` are written as one rule each (JAX's `optimizers.momentum` and `adam`): the same
state and numbers as their chains, with -lr_t folded into the last multiplication.

`lr` may be a float or a schedule, a function `t -> lr_t` of the number t = 0, 1, 2, ... of
updates already applied. Scalars are Python floats, so under NumPy 2's promotion rules (NEP 50)
`0.9 * W` stays in W's dtype (float32 by default): no float64 temporaries in the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import checks
from fnn.tree import tree_map, tree_zeros_like

Schedule = Callable[[int], float]
"""A learning-rate schedule: t (updates already applied, from 0) -> lr_t, a Python float."""


@attrs.frozen
class Optimizer:
    """A gradient transformation: two pure functions over pytrees.

    init(params) -> opt_state
    update(grads, opt_state, params, donate=False) -> (updates, opt_state); updates has the
        params' structure. donate=True: the rule may write its results into the arrays of
        `grads` and `opt_state`, which the caller will not use again.
    schedule: t -> lr_t, the learning rate the t-th update uses (t from 0), for reporting only;
        None for transforms without a learning rate (`trace`, `scale_by_adam`).
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]
    schedule: Schedule | None = None


@attrs.frozen
class CountState:
    """The state of `scale_by_lr`: how many updates it has scaled so far."""

    count: int


@attrs.frozen(eq=False)
class TraceState:
    """The state of `trace`: the velocity v, a tree shaped like the params, and the number of
    updates made so far (it times the subnormal flushes, see `_flush_period`)."""

    velocity: Any
    count: int = 0


@attrs.frozen(eq=False)
class AdamState:
    """The state of `scale_by_adam`: step count t and the moment sums M, V (param-shaped), the
    moment estimates m = (1 - b1) M and v = (1 - b2) V (see `scale_by_adam`)."""

    count: int
    mu: Any
    nu: Any


# ---------------------------------------------------------------- schedules


def constant(lr: float) -> Schedule:
    """lr_t = lr for every t."""
    lr = checks.positive_float("lr", lr)
    return lambda t: lr


def step_decay(lr: float, every: int, factor: float = 0.1) -> Schedule:
    """lr_t = lr · factor^⌊t / every⌋: the rate drops by `factor` after each `every` updates."""
    lr = checks.positive_float("lr", lr)
    every = checks.positive_int("every", every)
    factor = checks.positive_float("factor", factor)
    return lambda t: lr * factor ** (t // every)


def cosine(lr: float, total: int, final: float = 0.0) -> Schedule:
    """lr_t = final + (lr - final) · (1 + cos(π · min(t, total) / total)) / 2.

    Starts at lr, follows half a cosine down to `final` at t = total, and stays there.
    """
    lr = checks.positive_float("lr", lr)
    total = checks.positive_int("total", total)
    final = float(final)
    if not 0 <= final <= lr:
        raise ValueError(f"final must be in [0, lr={lr}], got {final}")
    return lambda t: final + (lr - final) * (1 + math.cos(math.pi * min(t, total) / total)) / 2


def as_schedule(lr: float | Schedule) -> Schedule:
    """A schedule from a float (`constant(lr)`) or a schedule itself (its values made Python floats)."""
    if callable(lr):
        return lambda t: float(lr(t))
    return constant(lr)


# ---------------------------------------------------------------- subnormals


def _flush_subnormals(a: np.ndarray) -> np.ndarray:
    """Round, in place, the tiniest entries of `a` (an array this module allocated) to multiples
    of s = 2^nmant · tiny (1e-31 in float32), so that neither they nor lr or momentum times them
    are subnormal; returns `a`. Run every `_flush_period(decay)` updates, not every update.

    Why: a velocity or moment whose gradient stays exactly 0 for a while (a pixel blank batch
    after batch, a dead ReLU unit) decays geometrically, 0.9^k, into the subnormal range, and
    x86 multiplies subnormals ~17x slower than normal floats. Training 784-128-10 on
    Fashion-MNIST, 4.5% of W1's velocity was subnormal by epoch 4 and each SGD update took 3.5x
    longer (367 vs 104 us): epochs of 0.45-0.51 s instead of 0.35-0.36 s.

    How: c = 1.5 · 2^nmant · s has a spacing (ulp) of exactly s, so for small x the sum x + c
    lands on a multiple of s and (x + c) - c is 0 or at least s in size: an error of at most
    s/2, far below half an ulp of any weight it is added to. Every |x| > 2^(2·nmant+2) · s
    (2.8e-17 in float32) comes back bit for bit. Two in-place passes and no temporaries: a third
    of the cost of `a[np.abs(a) < tiny] = 0`-style masking, which also leaves lr·v subnormal.
    """
    if not a.size:
        return a
    info = np.finfo(a.dtype)
    c = a.dtype.type(1.5 * 2.0 ** (2 * info.nmant) * info.tiny)
    a += c
    a -= c
    return a


# After a flush every entry is 0 or at least s = 2^nmant · tiny. An entry whose gradient stays 0
# shrinks by the factor `decay` per update, so flushing once every N updates, with decay^N ≥
# 2^-6, keeps it at least s / 64 (2^17 · tiny, 1.5e-33 in float32) between flushes: normal, and so
# are lr times it for any lr ≥ 2^-17. For momentum 0.9 that is a flush every 39 updates instead
# of every update: the two passes over the state cost 1/39 of what they did.
_FLUSH_HEADROOM = 2.0**-6


def _flush_period(decay: float) -> int:
    """Updates between two flushes of a state that decays by `decay` per update (0 ≤ decay < 1)."""
    if decay == 0:
        return 1 << 62  # nothing decays: μ·v is 0
    return max(1, int(math.log(_FLUSH_HEADROOM) / math.log(decay)))


# ---------------------------------------------------------------- the rules, for one array
#
# `into` is where a result goes: the array it replaces when donated, else None (a new array).


def _into(a: np.ndarray, donate: bool) -> np.ndarray | None:
    return a if donate else None


def _scale(g: np.ndarray, c: float, donate: bool) -> np.ndarray:
    """c · g."""
    return np.multiply(g, c, out=_into(g, donate))


def _momentum(g: np.ndarray, v: np.ndarray, mu: float, flush: bool, donate: bool) -> np.ndarray:
    """v' = μ v + g; with `flush`, μ v has its subnormals flushed to 0 first."""
    out = np.multiply(v, mu, out=_into(v, donate))
    if flush:
        _flush_subnormals(out)
    out += g
    return out


def _nesterov(g: np.ndarray, v: np.ndarray, mu: float, donate: bool) -> np.ndarray:
    """g + μ v' (v' the new velocity): the gradient plus the velocity's next step."""
    return np.add(g, mu * v, out=_into(g, donate))


def _adam_direction(m: np.ndarray, v: np.ndarray, k: float, shift: float, g: np.ndarray, donate: bool) -> np.ndarray:
    """k · m / (sqrt(v) + shift), written over `g` (the gradient's buffer) when donated."""
    u = np.sqrt(v, out=_into(g, donate))
    u += shift
    np.divide(m, u, out=u)
    u *= k
    return u


# ---------------------------------------------------------------- transforms


def scale_by_lr(lr: float | Schedule) -> Optimizer:
    """u = -lr_t · g, with t the count of updates this transform has made. The descent step."""
    schedule = as_schedule(lr)

    def init(params):
        return CountState(count=0)

    def update(grads, state, params=None, donate=False):
        c = -schedule(state.count)
        return tree_map(lambda g: _scale(g, c, donate), grads), CountState(count=state.count + 1)

    return Optimizer(init, update, schedule)


def trace(momentum: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy-ball velocity: v_t = μ v_{t-1} + g_t (v_0 = 0), and u = v_t.

    With nesterov=True, u = g_t + μ v_t: the gradient plus the velocity's next step, the usual
    way of writing Nesterov's look-ahead without evaluating the gradient twice.
    """
    init, update = _trace_rule(momentum, nesterov)
    return Optimizer(init, lambda grads, state, params=None, donate=False: update(grads, state, donate))


def _trace_rule(momentum: float, nesterov: bool):
    """(init, update(grads, state, donate) -> (u, state)) of `trace`: u is the new velocity
    itself without Nesterov (so a later transform must not write into it), g + μ v' with."""
    mu = checks.fraction("momentum", momentum)
    period = _flush_period(mu)

    def init(params):
        return TraceState(velocity=tree_zeros_like(params))

    def update(grads, state, donate):
        count = state.count + 1
        flush = count % period == 0  # see `_flush_period`
        v = tree_map(lambda g, v: _momentum(g, v, mu, flush, donate), grads, state.velocity)
        u = tree_map(lambda g, v: _nesterov(g, v, mu, donate), grads, v) if nesterov else v
        return u, TraceState(velocity=v, count=count)

    return init, update


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam's direction (Kingma & Ba 2015), before the learning rate:

        m_t = b1 m_{t-1} + (1 - b1) g          v_t = b2 v_{t-1} + (1 - b2) g²
        u   = m̂ / (sqrt(v̂) + eps)              m̂ = m_t / (1 - b1^t),  v̂ = v_t / (1 - b2^t)

    t counts from 1 at the first update; the bias corrections undo the zero start of m and v.
    The state holds the sums M = m / (1 - b1) and V = v / (1 - b2), which follow the momentum
    rule M_t = b1 M_{t-1} + g, V_t = b2 V_{t-1} + g²: two passes each instead of three, and the
    factors (1 - b1), (1 - b2) join the bias corrections' scalars.
    """
    init, scaled_update = _adam_rule(b1, b2, eps)
    return Optimizer(init, lambda grads, state, params=None, donate=False: scaled_update(grads, state, 1.0, donate))


def _adam_rule(b1: float, b2: float, eps: float):
    """(init, update(grads, state, scale, donate) -> (scale · u, state)) for `scale_by_adam`'s
    u: `adam` passes scale = -lr_t, so the learning rate costs no pass of its own."""
    b1, b2 = checks.fraction("b1", b1), checks.fraction("b2", b2)
    eps = checks.positive_float("eps", eps)
    period1, period2 = _flush_period(b1), _flush_period(b2)

    def init(params):
        return AdamState(count=0, mu=tree_zeros_like(params), nu=tree_zeros_like(params))

    def update(grads, state, scale, donate):
        t = state.count + 1
        flush1, flush2 = t % period1 == 0, t % period2 == 0  # see `_flush_period`
        mu = tree_map(lambda g, M: _momentum(g, M, b1, flush1, donate), grads, state.mu)
        # g² goes over the donated g, which nothing needs after this
        nu = tree_map(lambda g, V: _momentum(np.square(g, out=_into(g, donate)), V, b2, flush2, donate), grads, state.nu)
        # scale · m̂ / (sqrt(v̂) + eps) with m̂ = c1·M, v̂ = c2·V (c1 = (1 - b1) / (1 - b1^t),
        # c2 = (1 - b2) / (1 - b2^t)) is k·M / (sqrt(V) + eps / sqrt(c2)), k = scale · c1 / sqrt(c2):
        # the bias corrections fold into two scalars (Python floats: no float64 upcast)
        root_c2 = math.sqrt((1 - b2) / (1 - b2**t))
        k, shift = scale * (1 - b1) / ((1 - b1**t) * root_c2), eps / root_c2
        u = tree_map(lambda m, v, g: _adam_direction(m, v, k, shift, g, donate), mu, nu, grads)
        return u, AdamState(count=t, mu=mu, nu=nu)

    return init, update


def chain(*transforms: Optimizer) -> Optimizer:
    """Apply transforms left to right, each to the previous one's updates; state is a tuple.

    The chain's `schedule` is the first one found among its transforms. With donate=True, each
    transform may write into its own state; the grads are donated to the first transform only
    (a transform's updates may be its new state, as `trace`'s are).
    """
    if not transforms or not all(isinstance(t, Optimizer) for t in transforms):
        raise TypeError(f"chain needs one or more Optimizer transforms, got {transforms!r}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None, donate=False):
        new_state = []
        for i, (transform, inner) in enumerate(zip(transforms, state)):
            # later transforms get the previous updates, which may alias a state: copy-on-write
            grads, inner = transform.update(grads if i == 0 or not donate else tree_map(np.copy, grads),
                                            inner, params, donate=donate)
            new_state.append(inner)
        return grads, tuple(new_state)

    schedule = next((t.schedule for t in transforms if t.schedule is not None), None)
    return Optimizer(init, update, schedule)


# ---------------------------------------------------------------- the optimizers


def gd(lr: float | Schedule) -> Optimizer:
    """Plain gradient descent, the seed notebook's rule: θ := θ - lr_t · g."""
    return scale_by_lr(lr)


def sgd(lr: float | Schedule, momentum: float = 0.9, nesterov: bool = False) -> Optimizer:
    """SGD with heavy-ball (or Nesterov) momentum: v := μ v + g, θ := θ - lr_t · v.

    momentum=0 is plain `gd`. This is PyTorch's `torch.optim.SGD` rule (dampening 0). The state
    and updates are those of chain(trace(momentum, nesterov), scale_by_lr(lr)); the update
    -lr_t · v is written over the (donated) gradient, so a donated step allocates nothing.
    """
    if float(momentum) == 0:
        return gd(lr)
    trace_init, trace_update = _trace_rule(momentum, nesterov)
    schedule = as_schedule(lr)

    def init(params):
        return trace_init(params), CountState(count=0)

    def update(grads, state, params=None, donate=False):
        velocity, lr_state = state
        u, velocity = trace_update(grads, velocity, donate)
        c = -schedule(lr_state.count)
        # u is the new velocity (without Nesterov): -lr_t · u goes over the donated gradient
        u = tree_map(lambda u, g: np.multiply(u, c, out=_into(g, donate)), u, grads)
        return u, (velocity, CountState(count=lr_state.count + 1))

    return Optimizer(init, update, schedule)


def adam(lr: float | Schedule = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam: θ := θ - lr_t · m̂ / (sqrt(v̂) + eps), see `scale_by_adam`.

    chain(scale_by_adam(b1, b2, eps), scale_by_lr(lr)) with -lr_t folded into the direction's
    scalar k: the same state ((AdamState, CountState)) and the same updates up to rounding (lr_t
    multiplies one scalar instead of every entry), and one pass over the params fewer per update.
    """
    adam_init, scaled_update = _adam_rule(b1, b2, eps)
    schedule = as_schedule(lr)

    def init(params):
        return adam_init(params), CountState(count=0)

    def update(grads, state, params=None, donate=False):
        moments, lr_state = state
        updates, moments = scaled_update(grads, moments, -schedule(lr_state.count), donate)
        return updates, (moments, CountState(count=lr_state.count + 1))

    return Optimizer(init, update, schedule)


def apply_updates(params, updates, donate: bool = False):
    """θ + u leaf by leaf, in each parameter's dtype. New arrays, unless `donate`: then the
    caller gives up `params` and the sums are written into its arrays."""
    return tree_map(lambda p, u: np.add(p, u, out=_into(p, donate), dtype=p.dtype, casting="same_kind"), params, updates)
