"""Pytrees: nested attrs records, tuples, lists and dicts with arrays at the leaves.

Parameters, gradients, optimizer updates and optimizer state all share one structure, so each
piece of math is written for a single array and lifted to the whole tree with `tree_map`.
Fields of a record made with `static(...)` (attrs metadata {"static": True}) are
hyper-parameters: they are copied into every rebuilt node and are never leaves.

Raveling (like `jax.flatten_util.ravel_pytree`) lays a tree's leaves end to end in one 1-D
buffer: `spec = ravel_spec(tree)` records the leaves' shapes and how to rebuild the nodes, once;
`ravel(spec, tree)` copies the leaves into a new buffer and `unravel(spec, flat)` views a buffer
as the tree again, without copying. The training loop keeps params, gradients and optimizer
state as such buffers, so an optimizer's rule, written for one array, runs once per update on
the whole model. The spec is a value the caller holds: nothing is remembered here.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import attrs
import numpy as np


def static(default=attrs.NOTHING, **kwargs):
    """An attrs field for a hyper-parameter (LeakyRelu's alpha, Dropout's rate): tree operations
    copy it into every node they rebuild and never treat it as a leaf."""
    return attrs.field(default=default, metadata={"static": True, **kwargs.pop("metadata", {})}, **kwargs)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """The child field names of an attrs class (static fields excluded), or None for any other
    type: a pure function of the class, memoised (the training loop asks for a few classes)."""
    if not attrs.has(cls):
        return None
    return tuple(f.name for f in attrs.fields(cls) if f.init and not f.metadata.get("static", False))


@functools.cache
def _static_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in attrs.fields(cls) if f.init and f.metadata.get("static", False))


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
    return (f"dict with keys {sorted(node)}" if isinstance(node, dict)
            else f"{type(node).__name__} of length {len(node)}" if isinstance(node, (tuple, list)) else "leaf")


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
            raise ValueError(f"tree structures differ: {_describe(tree)} vs {_describe(other)}")
    if children is None:
        return f(tree, *rest)
    others = [_children(other) for other in rest]
    return _rebuild(tree, [tree_map(f, child, *(o[i] for o in others)) for i, child in enumerate(children)])


def tree_leaves(tree) -> list:
    """The leaves of `tree`, depth first, in field / index / sorted-key order."""
    children = _children(tree)
    if children is None:
        return [tree]
    return [leaf for child in children for leaf in tree_leaves(child)]


def tree_zeros_like(tree):
    """A tree of zero arrays with the shapes and dtypes of `tree`'s leaves."""
    return tree_map(np.zeros_like, tree)


# ---------------------------------------------------------------- raveling: one buffer, many views


@attrs.frozen(eq=False)
class RavelSpec:
    """How a tree of one structure lies in a 1-D buffer: `spans[i] = (start, stop, shape)` of the
    i-th leaf (`tree_leaves` order), `size` the buffer's length, `dtype` its dtype (the leaves'
    one float dtype) and `build(leaves)`, which makes the tree's nodes around an iterator of
    its leaves."""

    spans: tuple
    size: int
    dtype: np.dtype
    build: Callable


def ravel_spec(tree) -> RavelSpec:
    """The spec of `tree`, whose leaves must be arrays of one dtype."""
    leaves = tree_leaves(tree)
    dtypes = {np.asarray(leaf).dtype for leaf in leaves} or {np.dtype(np.float32)}
    if len(dtypes) > 1:
        raise TypeError(f"ravel_spec needs leaves of one dtype, got {sorted(map(str, dtypes))}")
    shapes = [np.shape(leaf) for leaf in leaves]
    stops = [0, *itertools.accumulate(math.prod(shape) for shape in shapes)]
    return RavelSpec(tuple(zip(stops, stops[1:], shapes)), stops[-1], dtypes.pop(), _builder(tree))


def ravel(spec: RavelSpec, tree) -> np.ndarray:
    """A new 1-D buffer (spec.size,) holding `tree`'s leaves end to end, in spec's dtype."""
    flat = np.empty(spec.size, spec.dtype)
    for (start, stop, shape), leaf in zip(spec.spans, tree_leaves(tree), strict=True):
        if np.shape(leaf) != shape:
            raise ValueError(f"ravel: a leaf of shape {np.shape(leaf)} where the spec has {shape}")
        flat[start:stop] = np.ravel(leaf)
    return flat


def unravel(spec: RavelSpec, flat: np.ndarray):
    """The tree of `spec` whose leaves are views of consecutive slices of `flat` (spec.size,):
    the inverse of `ravel`, copying nothing (writing into a leaf writes into `flat`)."""
    if flat.shape != (spec.size,):
        raise ValueError(f"unravel: the spec's leaves hold {spec.size} numbers, the buffer has shape {flat.shape}")
    return spec.build(iter([flat[start:stop].reshape(shape) for start, stop, shape in spec.spans]))


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
    return lambda leaves: _rebuild(tree, [build(leaves) for build in builds])


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
        flags = tree_leaves(tree_map(lambda x, y: np.shape(x) == np.shape(y) and np.allclose(x, y, rtol, atol), a, b))
    except ValueError:
        return False
    return all(flags)
