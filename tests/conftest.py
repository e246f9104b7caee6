"""Shared hypothesis strategies: small random networks with a batch to feed them.

Test modules import them with `from conftest import ...` (pytest puts tests/ on sys.path).
Arrays come from a seeded Generator rather than from hypothesis element strategies: the
numbers are generic (no shrinking towards all-zero inputs that would hide bugs) and each
example is still reproducible from the drawn seed.
"""

from __future__ import annotations

import os

import attrs
import numpy as np
import pytest
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import fnn


# modules marked slow as a whole that import something heavy at their top (scikit-learn: 2 s):
# a fast run (`-m "not slow"`) skips collecting them rather than importing them for nothing
SLOW_MODULES = {"test_sklearn_mlp.py"}


def pytest_ignore_collect(collection_path, config):
    if collection_path.name in SLOW_MODULES and config.getoption("markexpr") == "not slow":
        return True
    return None


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """The suite runs with BLAS limited to one thread: other processes often hold a core, and a
    2-thread BLAS then waits on it (the README test ran 60x slower). Results differ by thread
    count (a product's sums run in another order), so one count also keeps them comparable.
    Child processes (scripts, `python -m fnn`) get one thread through the environment."""
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


@attrs.frozen(eq=False)
class Problem:
    """A network and a batch for it. X: (m, n_0) in the params' dtype, y: (m,) int64 in [0, k)."""

    params: fnn.MLP
    X: np.ndarray
    y: np.ndarray
    l2: float
    seed: int


@st.composite
def problems(
    draw,
    dtype=np.float64,
    hidden=st.integers(1, 3),
    width=st.integers(1, 20),
    batch=st.integers(1, 16),
    l2=st.sampled_from([0.0, 0.05, 1.0]),
) -> Problem:
    """A He-initialised MLP with 1-3 hidden layers of width 1-20, random N(0, 0.1²) biases (so
    bias gradients differ from unit to unit), 1-10 classes, and a batch X ~ N(0, 1), y uniform."""
    seed = draw(st.integers(0, 2**32 - 1))
    sizes = (draw(width),) + tuple(draw(width) for _ in range(draw(hidden))) + (draw(st.integers(1, 10)),)
    m = draw(batch)
    rng = np.random.default_rng(seed)
    net = fnn.init(rng, sizes, dtype=dtype)
    params = fnn.MLP(
        layers=tuple(
            attrs.evolve(layer, b=(0.1 * rng.standard_normal(layer.b.shape)).astype(dtype))
            if isinstance(layer, fnn.Dense) else layer
            for layer in net.layers
        )
    )
    X = rng.standard_normal((m, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=m)
    return Problem(params=params, X=X, y=y, l2=draw(l2), seed=seed)
