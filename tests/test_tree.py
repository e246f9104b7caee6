"""fnn.tree: tree_map keeps structure and names both sides of a mismatch; leaf order; reductions."""

from __future__ import annotations

from typing import NamedTuple

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from fnn.tree import tree_vdot


@attrs.frozen(eq=False)
class Pair:
    first: object
    second: object


class Point(NamedTuple):
    x: object
    y: object


leaf_arrays = hnp.arrays(
    st.sampled_from([np.float32, np.float64]),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements=st.floats(-1e3, 1e3, width=32),
)

trees = st.recursive(
    leaf_arrays,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text("abcdef", min_size=1, max_size=3), children, max_size=3),
        st.builds(Pair, children, children),
        st.builds(Point, children, children),
    ),
    max_leaves=8,
)


def structure(tree):
    """The tree with every leaf replaced by None: equal structures give equal results."""
    return fnn.tree_map(lambda _: None, tree)


def same_structure(a, b) -> bool:
    try:
        fnn.tree_map(lambda *_: None, a, b)
    except ValueError:
        return False
    return True


def example():
    return {
        "b": [np.array([1.0]), (np.array([2.0, 3.0]), Pair(np.array(4.0), np.array([5.0])))],
        "a": Point(np.array([[6.0]]), {"z": np.array(7.0), "y": np.array([8.0, 9.0])}),
    }


def test_tree_map_keeps_every_container_type_and_key():
    doubled = fnn.tree_map(lambda a: 2 * a, example())
    assert sorted(doubled) == ["a", "b"]
    assert type(doubled["b"]) is list and type(doubled["b"][1]) is tuple
    assert type(doubled["b"][1][1]) is Pair and type(doubled["a"]) is Point
    assert sorted(doubled["a"].y) == ["y", "z"]
    np.testing.assert_array_equal(doubled["b"][1][1].first, 8.0)
    np.testing.assert_array_equal(doubled["a"].y["y"], [16.0, 18.0])


def test_tree_leaves_order_is_fields_then_indices_then_sorted_keys():
    # dict keys sorted ("a" before "b"), NamedTuple/attrs fields in declaration order.
    values = [float(np.ravel(leaf)[0]) for leaf in fnn.tree_leaves(example())]
    assert values == [6.0, 8.0, 7.0, 1.0, 2.0, 4.0, 5.0]


def test_tree_leaves_of_an_mlp_are_W1_b1_W2_b2():
    params = fnn.init(np.random.default_rng(0), (3, 4, 2))
    leaves = fnn.tree_leaves(params)
    assert [leaf.shape for leaf in leaves] == [(3, 4), (4,), (4, 2), (2,)]
    assert leaves[0] is params.layers[0].W and leaves[3] is params.layers[2].b  # Relu has no leaves


@settings(max_examples=25, deadline=None)
@given(trees)
def test_tree_map_identity_and_composition(tree):
    assert same_structure(fnn.tree_map(lambda a: a, tree), tree)
    mapped = fnn.tree_map(lambda a: a + 1, fnn.tree_map(lambda a: a * 2, tree))
    direct = fnn.tree_map(lambda a: a * 2 + 1, tree)
    assert fnn.tree_allclose(mapped, direct, rtol=0)
    assert len(fnn.tree_leaves(mapped)) == len(fnn.tree_leaves(tree))


@settings(max_examples=25, deadline=None)
@given(trees)
def test_tree_map_does_not_mutate_its_input(tree):
    before = [leaf.copy() for leaf in fnn.tree_leaves(tree)]
    fnn.tree_map(lambda a, b: a - b, tree, tree)
    for leaf, old in zip(fnn.tree_leaves(tree), before):
        assert leaf.tobytes() == old.tobytes()


@settings(max_examples=25, deadline=None)
@given(trees)
def test_global_norm_is_the_norm_of_the_concatenated_leaves(tree):
    flat = np.concatenate([np.ravel(leaf).astype(np.float64) for leaf in fnn.tree_leaves(tree)] + [np.zeros(0)])
    assert fnn.global_norm(tree) == pytest.approx(np.linalg.norm(flat), rel=1e-12, abs=1e-300)
    assert tree_vdot(tree, tree) == pytest.approx(flat @ flat, rel=1e-12, abs=1e-300)


def test_tree_zeros_like_keeps_shapes_and_dtypes():
    zeros = fnn.tree_zeros_like(fnn.init(np.random.default_rng(0), (3, 4, 2)))
    assert [(a.shape, a.dtype) for a in fnn.tree_leaves(zeros)] == [
        ((3, 4), np.float32), ((4,), np.float32), ((4, 2), np.float32), ((2,), np.float32)
    ]
    assert fnn.global_norm(zeros) == 0.0


@pytest.mark.parametrize(
    "a, b, message",
    [
        ([np.zeros(1)], (np.zeros(1),), r"list of length 1 vs tuple of length 1"),
        ([np.zeros(1)], [np.zeros(1), np.zeros(1)], r"list of length 1 vs list of length 2"),
        ({"a": np.zeros(1)}, {"b": np.zeros(1)}, r"dict with keys \['a'\] vs dict with keys \['b'\]"),
        (Pair(np.zeros(1), np.zeros(1)), Point(np.zeros(1), np.zeros(1)), r"Pair\(first, second\) vs Point of length 2"),
        (Point(np.zeros(1), np.zeros(1)), (np.zeros(1), np.zeros(1)), r"Point of length 2 vs tuple of length 2"),
        ((np.zeros(1),), ((np.zeros(1),),), r"leaf vs tuple of length 1"),
        (([np.zeros(1)],), (np.zeros(1),), r"list of length 1 vs leaf"),
    ],
)
def test_mismatched_structures_raise_naming_both(a, b, message):
    with pytest.raises(ValueError, match=r"tree structures differ: " + message):
        fnn.tree_map(lambda *leaves: leaves[0], a, b)


def test_tree_map_of_two_mlps_of_different_depth_names_both():
    shallow = fnn.init(np.random.default_rng(0), (3, 2))
    deep = fnn.init(np.random.default_rng(0), (3, 4, 2))
    with pytest.raises(ValueError, match=r"tuple of length 1 vs tuple of length 3"):
        fnn.step(shallow, deep, 0.1)


def test_tree_allclose():
    a = example()
    assert fnn.tree_allclose(a, a)
    nudged = fnn.tree_map(lambda x: x * (1 + 1e-9), a)
    assert fnn.tree_allclose(a, nudged, rtol=1e-8)
    assert not fnn.tree_allclose(a, nudged, rtol=1e-12)
    assert not fnn.tree_allclose(a, fnn.tree_map(lambda x: x + 1, a))
    assert not fnn.tree_allclose([np.zeros(2)], (np.zeros(2),))  # structure differs
    assert not fnn.tree_allclose([np.zeros(2)], [np.zeros((2, 1))])  # shape differs, no broadcast
    assert fnn.tree_allclose([np.zeros(2)], [np.full(2, 1e-3)], rtol=0, atol=1e-2)
