"""Optimizers as pairs of pure functions, in optax's shape.

An `Optimizer` is `init(params) -> opt_state` and `update(grads, opt_state, params) ->
(updates, opt_state)`. Updates are *added* to the parameters by `apply_updates`, so a descent
step carries its own minus sign. The state is a pytree of records holding trees shaped like the
params (velocity, Adam moments) plus its own step count; nothing is mutated, every call returns
new arrays.

Each rule is written for one array and lifted to the whole tree with `tree_map_raveled`: when
the trees are raveled (their leaves views of one buffer, as the grads of `fnn.nn.backward`, the
states built here and the params `apply_updates` returns are), the rule runs once on the whole
buffer, a few NumPy calls per update instead of a Python walk and a call per leaf. Every call
still returns new arrays; in-place operations (`out=`, `+=`) touch only arrays allocated in the
same function. Bigger optimizers are chains of small transforms, applied left to right:

    gd(lr)             = scale_by_lr(lr)                         u = -lr_t g
    sgd(lr, momentum)  = chain(trace(momentum), scale_by_lr(lr))  v = μ v + g,  u = -lr_t v
    adam(lr, ...)      = chain(scale_by_adam(...), scale_by_lr(lr)), with lr_t folded into one scalar

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
from fnn.tree import raveled_layout, new_buffer, tree_leaves, tree_map, tree_map_raveled, tree_unravel, tree_zeros_like

Schedule = Callable[[int], float]
"""A learning-rate schedule: t (updates already applied, from 0) -> lr_t, a Python float."""


@attrs.frozen
class Optimizer:
    """A gradient transformation: two pure functions over pytrees.

    init(params) -> opt_state
    update(grads, opt_state, params) -> (updates, opt_state); updates has the params' structure
    schedule: t -> lr_t, the learning rate the t-th update uses (t from 0), for reporting only;
        None for transforms without a learning rate (`trace`, `scale_by_adam`).
    """

    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], tuple[Any, Any]]
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
    """The state of `scale_by_adam`: step count t and the moment estimates m, v (param-shaped)."""

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


# ---------------------------------------------------------------- transforms


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


def scale_by_lr(lr: float | Schedule) -> Optimizer:
    """u = -lr_t · g, with t the count of updates this transform has made. The descent step."""
    schedule = as_schedule(lr)

    def init(params):
        return CountState(count=0)

    def update(grads, state, params=None):
        step_size = -schedule(state.count)
        scaled = tree_map_raveled(lambda g, out: np.multiply(g, step_size, out=out), grads)
        return scaled, CountState(count=state.count + 1)

    return Optimizer(init, update, schedule)


def trace(momentum: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Heavy-ball velocity: v_t = μ v_{t-1} + g_t (v_0 = 0), and u = v_t.

    With nesterov=True, u = g_t + μ v_t: the gradient plus the velocity's next step, the usual
    way of writing Nesterov's look-ahead without evaluating the gradient twice.
    """
    momentum = checks.fraction("momentum", momentum)
    period = _flush_period(momentum)

    def init(params):
        return TraceState(velocity=tree_zeros_like(params))

    def momentum_plus(g, v, out, flush=False):
        """out = μ v + g (`out` a new array of tree_map_raveled's); with `flush`, the decayed
        μ v has its subnormals flushed to 0 first (see `_flush_subnormals`)."""
        np.multiply(v, momentum, out=out)
        if flush:
            _flush_subnormals(out)
        out += g
        return out

    def update(grads, state, params=None):
        count = state.count + 1
        flush = count % period == 0  # see `_flush_period`
        v = tree_map_raveled(lambda g, v, out: momentum_plus(g, v, out, flush), grads, state.velocity)
        updates = tree_map_raveled(momentum_plus, grads, v) if nesterov else v  # g + μ v_t
        return updates, TraceState(velocity=v, count=count)

    return Optimizer(init, update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam's direction (Kingma & Ba 2015), before the learning rate:

        m_t = b1 m_{t-1} + (1 - b1) g          v_t = b2 v_{t-1} + (1 - b2) g²
        u   = m̂ / (sqrt(v̂) + eps)              m̂ = m_t / (1 - b1^t),  v̂ = v_t / (1 - b2^t)

    t counts from 1 at the first update; the bias corrections undo the zero start of m and v.
    """
    init, scaled_update = _adam_rule(b1, b2, eps)
    return Optimizer(init, lambda grads, state, params=None: scaled_update(grads, state, 1.0))


def _adam_rule(b1: float, b2: float, eps: float):
    """(init, update(grads, state, scale) -> (scale · u, state)) for `scale_by_adam`'s u: `adam`
    passes scale = -lr_t, so the learning rate costs no pass of its own over the params."""
    b1, b2 = checks.fraction("b1", b1), checks.fraction("b2", b2)
    eps = checks.positive_float("eps", eps)
    period1, period2 = _flush_period(b1), _flush_period(b2)

    def init(params):
        return AdamState(count=0, mu=tree_zeros_like(params), nu=tree_zeros_like(params))

    def moment(new, m, decay, flush):
        """decay·m + (1 - decay)·g as m + (1 - decay)(g - m), given new = g - m (or g² - m) in
        an array of tree_map_raveled's, updated in place. Subnormals flushed to 0 when `flush`
        (see `_flush_subnormals`)."""
        new *= 1 - decay
        new += m
        return _flush_subnormals(new) if flush else new

    def first(g, m, out, flush):
        return moment(np.subtract(g, m, out=out), m, b1, flush)

    def second(g, v, out, flush):
        np.square(g, out=out)
        return moment(np.subtract(out, v, out=out), v, b2, flush)

    def update(grads, state, scale):
        t = state.count + 1
        flush1, flush2 = t % period1 == 0, t % period2 == 0  # see `_flush_period`
        mu = tree_map_raveled(lambda g, m, out: first(g, m, out, flush1), grads, state.mu)
        nu = tree_map_raveled(lambda g, v, out: second(g, v, out, flush2), grads, state.nu)
        # scale · m̂ / (sqrt(v̂) + eps) with m̂ = c1·m, v̂ = c2·v is k·m / (sqrt(v) + eps / sqrt(c2)),
        # k = scale · c1 / sqrt(c2): the bias corrections fold into two scalars (Python floats:
        # no float64 upcast)
        root_c2 = math.sqrt(1 / (1 - b2**t))
        k, shift = scale / ((1 - b1**t) * root_c2), eps / root_c2

        def direction(m, v, u):
            """u = k·m / (sqrt(v) + shift), u a new array of tree_map_raveled's."""
            np.sqrt(v, out=u)
            u += shift
            np.divide(m, u, out=u)
            u *= k
            return u

        return tree_map_raveled(direction, mu, nu), AdamState(count=t, mu=mu, nu=nu)

    return init, update


def chain(*transforms: Optimizer) -> Optimizer:
    """Apply transforms left to right, each to the previous one's updates; state is a tuple.

    The chain's `schedule` is the first one found among its transforms.
    """
    if not transforms or not all(isinstance(t, Optimizer) for t in transforms):
        raise TypeError(f"chain needs one or more Optimizer transforms, got {transforms!r}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None):
        new_state = []
        for transform, inner in zip(transforms, state):
            grads, inner = transform.update(grads, inner, params)
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

    momentum=0 is plain `gd`. This is PyTorch's `torch.optim.SGD` rule (dampening 0).
    """
    if float(momentum) == 0:
        return gd(lr)
    return chain(trace(momentum, nesterov), scale_by_lr(lr))


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

    def update(grads, state, params=None):
        moments, lr_state = state
        updates, moments = scaled_update(grads, moments, -schedule(lr_state.count))
        return updates, (moments, CountState(count=lr_state.count + 1))

    return Optimizer(init, update, schedule)


def apply_updates(params, updates):
    """θ + u leaf by leaf, cast back to each parameter's dtype. Returns new arrays.

    When the updates are raveled and share the params' shapes and dtype, the new params are one
    raveled buffer too (one addition when the params already are), so the next update's
    arithmetic runs on whole buffers.
    """
    u_layout, p_layout = raveled_layout(updates), raveled_layout(params)
    if u_layout is not None and p_layout is not None and u_layout[1] == p_layout[1] and u_layout[0].dtype == p_layout[0].dtype:
        flat_u = u_layout[0]
        return tree_unravel(params, np.add(p_layout[0], flat_u, out=new_buffer(flat_u.size, flat_u.dtype)))
    p_leaves, u_leaves = tree_leaves(params), tree_leaves(updates)
    if u_layout is not None and len(p_leaves) == len(u_leaves) and all(
        isinstance(p, np.ndarray) and p.shape == u.shape and p.dtype == u.dtype for p, u in zip(p_leaves, u_leaves)
    ):
        flat_u = u_layout[0]
        out = new_buffer(flat_u.size, flat_u.dtype)
        new = tree_unravel(params, out)
        for p, u, o in zip(p_leaves, u_leaves, tree_leaves(new)):
            np.add(p, u, out=o)
        return new
    return tree_map(lambda p, u: (p + u).astype(p.dtype, copy=False), params, updates)
