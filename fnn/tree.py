"""Pytrees: nested attrs records, tuples, lists and dicts with arrays at the leaves.

Parameters, gradients, optimizer updates and optimizer state all share one structure, so each
piece of math is written for a single array and lifted to the whole tree with `tree_map`.
Fields of a record made with `static(...)` (attrs metadata {"static": True}) are
hyper-parameters: they are copied into every rebuilt node and are never leaves.
"""

from __future__ import annotations

import functools
import itertools
import math
import sys
import threading
import weakref

import attrs
import numpy as np


def static(default=attrs.NOTHING, **kwargs):
    """An attrs field for a hyper-parameter (LeakyRelu's alpha, Dropout's rate): tree operations
    copy it into every node they rebuild and never treat it as a leaf."""
    return attrs.field(default=default, metadata={"static": True}, **kwargs)


def _is_static(field: attrs.Attribute) -> bool:
    return bool(field.metadata.get("static", False))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The child field names of an attrs class (static fields excluded), or None for any other
    type (cached per type: the training loop maps over the same few record types thousands of
    times a second)."""
    return tuple(f.name for f in attrs.fields(cls) if not _is_static(f)) if attrs.has(cls) else None


@functools.cache
def _static_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if _is_static(f))


def static_fields(record) -> dict:
    """{name: value} of a record's static fields (e.g. {"rate": 0.2} for a Dropout layer)."""
    return {name: getattr(record, name) for name in _static_names(type(record))}


def _children(tree):
    """The ordered children of an inner node, or None when `tree` is a leaf."""
    names = _field_names(type(tree))
    if names is not None:
        return [getattr(tree, name) for name in names]
    if isinstance(tree, (tuple, list)):
        return list(tree)
    if isinstance(tree, dict):
        return [tree[key] for key in sorted(tree)]
    return None


def _rebuild(tree, children):
    """A node of the same type as `tree` holding `children` (in `_children` order)."""
    names = _field_names(type(tree))
    if names is not None:
        if not names:  # a record without leaves (Relu(), LeakyRelu(alpha)) is its own rebuild: it is frozen
            return tree
        return type(tree)(**dict(zip(names, children)), **static_fields(tree))
    if isinstance(tree, tuple):
        return type(tree)(*children) if hasattr(tree, "_fields") else tuple(children)
    if isinstance(tree, list):
        return list(children)
    return dict(zip(sorted(tree), children))


def _describe(node) -> str:
    if attrs.has(type(node)):
        return f"{type(node).__name__}({', '.join(_field_names(type(node)))})"
    if isinstance(node, dict):
        return f"dict with keys {sorted(node)}"
    if isinstance(node, (tuple, list)):
        return f"{type(node).__name__} of length {len(node)}"
    return "leaf"


def _same_node(a, b) -> bool:
    if _field_names(type(a)) is not None or isinstance(a, dict):
        return type(a) is type(b) and (not isinstance(a, dict) or sorted(a) == sorted(b))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and type(a) is type(b) and len(a) == len(b)
    return _children(b) is None


def tree_map(f, tree, *rest):
    """Apply `f` leaf by leaf: `f(leaf, *matching_leaves_of_rest)`, keeping `tree`'s structure.

    All trees must share one structure; a mismatch raises ValueError naming both nodes.
    """
    children = _children(tree)
    for other in rest:
        if not _same_node(tree, other):
            raise ValueError(
                f"tree structures differ: {_describe(tree)} vs {_describe(other)}"
            )
    if children is None:
        return f(tree, *rest)
    others = [_children(other) for other in rest]
    mapped = [tree_map(f, child, *(o[i] for o in others)) for i, child in enumerate(children)]
    return _rebuild(tree, mapped)


def tree_leaves(tree) -> list:
    """The leaves of `tree`, depth first, in field / index / sorted-key order."""
    children = _children(tree)
    if children is None:
        return [tree]
    return [leaf for child in children for leaf in tree_leaves(child)]


def tree_zeros_like(tree):
    """A tree of zero arrays with the shapes and dtypes of `tree`'s leaves: views into one zeroed
    buffer (see `tree_ravel`) when the leaves are arrays of one dtype."""
    leaves = tree_leaves(tree)
    dtype = common_dtype(leaves)
    if dtype is None:
        return tree_map(np.zeros_like, tree)
    return tree_unravel(tree, np.zeros(sum(leaf.size for leaf in leaves), dtype))


# ---------------------------------------------------------------- raveled trees: one buffer, many views
#
# A tree is *raveled* when its leaves are C-contiguous views of consecutive slices of one 1-D
# array, in `tree_leaves` order (like `jax.flatten_util.ravel_pytree`, but the leaves already
# live there, so nothing is copied). Elementwise math on two raveled trees of one structure is
# then a single NumPy call on their buffers instead of a Python walk and a call per leaf.


def common_dtype(leaves) -> np.dtype | None:
    """The one dtype of `leaves` when all are NumPy arrays of it (and there is one), else None."""
    if not leaves or not all(isinstance(leaf, np.ndarray) for leaf in leaves):
        return None
    dtype = leaves[0].dtype
    return dtype if all(leaf.dtype == dtype for leaf in leaves) else None


def ravel_leaves(leaves: list) -> np.ndarray | None:
    """The 1-D array that `leaves` tile in order (each a C-contiguous view of the next slice of
    it, together covering all of it), or None when they do not."""
    if not leaves:
        return None
    first = leaves[0]
    base = getattr(first, "base", None)
    if not isinstance(base, np.ndarray) or base.ndim != 1 or base.dtype != first.dtype or not base.flags.c_contiguous:
        return None
    at = base.__array_interface__["data"][0]
    step = base.itemsize
    for leaf in leaves:
        if (leaf.base is not base or leaf.dtype != base.dtype or not leaf.flags.c_contiguous
                or leaf.__array_interface__["data"][0] != at):
            return None
        at += leaf.size * step
    return base if at == base.__array_interface__["data"][0] + base.size * step else None


# The records `tree_unravel` (and `fnn.nn.backward`) build, each with its buffer and leaf
# shapes, so that finding them raveled again is a dictionary look-up, not a walk over the tree
# (records are frozen: what they hold cannot change). Weak keys: an entry goes with its record.
_layouts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember_raveled(tree, flat: np.ndarray, shapes: tuple, structured_like=None) -> None:
    """Note that `tree`'s leaves, of `shapes`, tile `flat` in order (a fact its builder knows).
    structured_like: a tree its builder knows has `tree`'s structure (node types, static fields
    and leaf shapes), whose `tree_unravel` plan then serves `tree` too."""
    # only records hashed by identity (attrs eq=False, as every record holding arrays is): a
    # value-hashed key would answer for an equal but different tree. Tuples, lists and dicts take
    # no weak references: they are found raveled by a walk instead.
    if type(tree).__hash__ is object.__hash__:
        try:
            _layouts[tree] = (flat, shapes)
        except TypeError:
            return
        plan = _plans.get(structured_like) if type(structured_like) is type(tree) else None
        if plan is not None and plan.shapes == shapes:
            _plans[tree] = plan


def raveled_layout(tree) -> tuple[np.ndarray, tuple] | None:
    """(buffer, leaf shapes) of a raveled tree, else None."""
    known = _layouts.get(tree) if type(tree).__hash__ is object.__hash__ else None
    if known is not None:
        return known
    leaves = tree_leaves(tree)
    flat = ravel_leaves(leaves)
    return None if flat is None else (flat, tuple(np.shape(leaf) for leaf in leaves))


def tree_ravel(tree) -> np.ndarray | None:
    """The buffer whose consecutive slices are `tree`'s leaves (the tree is raveled), or None."""
    layout = raveled_layout(tree)
    return None if layout is None else layout[0]


def tree_unravel(like, flat: np.ndarray):
    """A tree of `like`'s structure whose leaves are views of consecutive slices of the 1-D
    array `flat`, shaped like `like`'s leaves: the inverse of `tree_ravel`. flat: (Σ sizes,)."""
    keyed = type(like).__hash__ is object.__hash__  # a record hashed by identity, see remember_raveled
    plan = _plans.get(like) if keyed else None
    if plan is None:
        plan = _Plan(like)
        if keyed:
            _plans[like] = plan
    if plan.size != flat.size:
        raise ValueError(f"tree_unravel: the tree's leaves hold {plan.size} numbers, the buffer {flat.size}")
    tree = plan.build(iter([flat[start:stop].reshape(shape) for start, stop, shape in plan.spans]))
    remember_raveled(tree, flat, plan.shapes, like)  # and the next tree_unravel like it skips the walk
    return tree


class _Plan:
    """How to rebuild a tree of one structure from a buffer: each leaf's (start, stop, shape)
    in it, and `build`, which makes the tree's nodes around an iterator of its leaves. Made by
    one walk over a tree; kept (in `_plans`) for every record `tree_unravel` builds, so the
    training loop, which unravels trees of one structure a few times a step, walks none."""

    def __init__(self, like):
        shapes = tuple(np.shape(leaf) for leaf in tree_leaves(like))
        stops = list(itertools.accumulate(math.prod(shape) for shape in shapes))
        self.shapes = shapes
        self.spans = [(stop - math.prod(shape), stop, shape) for stop, shape in zip(stops, shapes)]
        self.size = stops[-1] if stops else 0
        self.build = _builder(like)


_plans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _builder(tree):
    """build(leaves) -> a tree of `tree`'s structure (records, statics and all) whose leaves
    are the next ones of the iterator `leaves`, in `tree_leaves` order."""
    names = _field_names(type(tree))
    if names is not None:
        if not names:  # frozen and leafless: its own rebuild
            return lambda leaves: tree
        cls, statics = type(tree), static_fields(tree)
        fields = [(name, _builder(getattr(tree, name))) for name in names]
        return lambda leaves: cls(**{name: build(leaves) for name, build in fields}, **statics)
    children = _children(tree)
    if children is None:
        return next
    builds = [_builder(child) for child in children]
    if type(tree) is tuple:
        return lambda leaves: tuple([build(leaves) for build in builds])
    return lambda leaves: _rebuild(tree, [build(leaves) for build in builds])


def tree_map_raveled(f, tree, *rest):
    """A tree of `tree`'s structure holding `f(leaf, *matching_leaves_of_rest, out)` for an
    elementwise `f` that writes its result into `out` (a new uninitialised array shaped and typed
    like its first argument, which f may also use as scratch) and returns it.

    When every tree is raveled with one layout, f runs once on their buffers with `out` a
    buffer from `new_buffer`, and the result is raveled too; otherwise f runs leaf by leaf.
    """
    layouts = [raveled_layout(t) for t in (tree, *rest)]
    if all(layout is not None and layout[1] == layouts[0][1] for layout in layouts):
        flats = [flat for flat, _ in layouts]
        return tree_unravel(tree, f(*flats, new_buffer(flats[0].size, flats[0].dtype)))
    # leaf by leaf; tree_map also reports a structure mismatch
    return tree_map(lambda *arrays: f(*arrays, np.empty_like(arrays[0])), tree, *rest)


# ---------------------------------------------------------------- buffers for new results
#
# Why: a training step returns new params, grads and optimizer state, each as large as the
# model (400 KB for 784-128-10). glibc serves such blocks from fresh pages (mmap, or heap it
# trimmed back to the kernel after the previous step), and first touching each 4 KB page is a
# page fault: on a loaded machine ~130 faults a step, a fifth of an epoch in kernel time, and a
# varying one. How: the buffers handed out recently are kept, and one that nothing references
# any more (no array, view or record anywhere in the process: its reference count says so) is
# handed out again instead of new memory. No live array ever shares memory with a reused
# buffer, so no caller can tell the difference; results stay new arrays in every sense a caller
# can observe, and the same inputs give the same bits.

# Adam has nine buffers of the model's size in flight in a step (old params and moments, grads,
# new moments, direction, scaled updates, new params), and a caller holds a few results more
# (fit: the last good state, the best params, a StepOutput's grads and updates)
_KEEP_PER_SIZE = 16
_MIN_BYTES = 1 << 16  # smaller blocks come from malloc's free lists anyway
_MAX_KEPT_BYTES = 1 << 27  # never hold more than 128 MiB between steps
_kept = threading.local()  # per thread: a buffer one thread holds is invisible to another


def _refcounts(buffers: list) -> list[int]:
    return [sys.getrefcount(buffer) for buffer in buffers]


_UNREFERENCED = _refcounts([np.empty(0)])[0]  # the count of a buffer only the list holds


def new_buffer(size: int, dtype) -> np.ndarray:
    """An uninitialised 1-D array of `size` entries of `dtype`, for a result about to be
    written whole: a kept buffer nothing references any more, else a new one (see above)."""
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    if nbytes < _MIN_BYTES:
        return np.empty(size, dtype)
    pools = getattr(_kept, "pools", None)
    if pools is None:
        pools = _kept.pools = {}
    buffers = pools.setdefault((size, dtype), [])  # least recently handed out first
    counts = _refcounts(buffers)
    for i in range(len(buffers) - 1, -1, -1):  # the most recently freed is likeliest still in cache
        if counts[i] == _UNREFERENCED:
            buffers.append(buffers.pop(i))
            return buffers[-1]
    if len(buffers) >= _KEEP_PER_SIZE:
        # every kept buffer is in use: stop tracking the one handed out longest ago (a result
        # someone holds on to, such as fit's best params), so the pool follows the buffers that
        # come and go with each step
        buffers.pop(0)
    buffer = np.empty(size, dtype)
    if sum(b.nbytes for bs in pools.values() for b in bs) + nbytes <= _MAX_KEPT_BYTES:
        buffers.append(buffer)
    return buffer


def tree_vdot(a, b) -> float:
    """Σ over leaves of <a_leaf, b_leaf>, accumulated in float64 (a reporting reduction)."""
    products = tree_map(lambda x, y: np.vdot(x.astype(np.float64), y.astype(np.float64)), a, b)
    return float(sum(tree_leaves(products)))


def global_norm(tree) -> float:
    """sqrt(Σ over leaves of ||leaf||²): the Euclidean norm of the whole tree as one vector."""
    return float(np.sqrt(tree_vdot(tree, tree)))


def tree_allclose(a, b, rtol: float = 1e-7, atol: float = 0.0) -> bool:
    """True when both trees share a structure and every pair of leaves is allclose."""
    try:
        flags = tree_leaves(
            tree_map(lambda x, y: np.shape(x) == np.shape(y) and np.allclose(x, y, rtol, atol), a, b)
        )
    except ValueError:
        return False
    return all(flags)
