"""Pytrees: nested attrs records, tuples, lists and dicts with arrays at the leaves.

Parameters, gradients, optimizer updates and optimizer state all share one structure, so each
piece of math is written for a single array and lifted to the whole tree with `tree_map`.
Fields of a record made with `static(...)` (attrs metadata {"static": True}) are
hyper-parameters: they are copied into every rebuilt node and are never leaves.
"""

from __future__ import annotations

import functools

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
    """A tree of zero arrays with the shapes and dtypes of `tree`'s leaves."""
    return tree_map(np.zeros_like, tree)


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
