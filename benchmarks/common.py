"""Cached input builders, the BLAS floor and a timer, shared by the benchmark modules.

The floor: one training step of an MLP performs a fixed list of matrix products, e.g. for
784-128-10 with a batch of m rows

    forward   X @ W1        (m, 784) x (784, 128)
              A1 @ W2       (m, 128) x (128, 10)
    backward  A1.T @ dZ2    (128, m) x (m, 10)      -> dW2
              dZ2 @ W2.T    (m, 10)  x (10, 128)    -> dA1
              X.T @ dZ1     (784, m) x (m, 128)     -> dW1

each costing 2·rows·inner·cols FLOPs. Timing exactly these products (same shapes, same
transposed views, same dtype) back to back on this machine's BLAS gives the time a step could
take if everything else were free. `floor seconds / measured seconds` (both the best of several
runs) is then the fraction of
the measured time spent in the products: 1.0 is the ceiling, and the rest of the step
(softmax, relu mask, bias sums, optimizer arithmetic, batch gathering, Python) is the gap.

Builders are cached per process (asv runs each benchmark in its own process; the plain runner
shares them across benchmarks) and return read-only arrays, so a benchmark that mutated its
inputs would fail loudly rather than skew the next one.
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Callable

import attrs
import numpy as np

import fnn

SEED = 20240611
N_FEATURES = 784  # 28 x 28 pixels, Fashion-MNIST's shape
N_CLASSES = 10
N_TRAIN = 60_000
N_TEST = 10_000

# The clock every timing here reads. asv times wall clock; `python -m benchmarks --clock cpu`
# rebinds this to time.process_time (CPU seconds of all this process's threads), which load
# from other processes disturbs far less on a shared machine. Floors and figures then agree.
CLOCK = time.perf_counter


@attrs.frozen
class Product:
    """One matrix product `left @ right` as a training step performs it.

    left/right: the shapes of the arrays as stored (C-contiguous); left_T/right_T: whether the
    product uses the transposed view (`A.T`), which BLAS reads without a copy.
    """

    name: str
    left: tuple[int, int]
    right: tuple[int, int]
    left_T: bool = False
    right_T: bool = False


def product_flops(p: Product) -> int:
    """2·rows·inner·cols: one multiply and one add per term of each output entry."""
    rows, inner = p.left[::-1] if p.left_T else p.left
    cols = p.right[0] if p.right_T else p.right[1]
    return 2 * rows * inner * cols


def forward_products(m: int, sizes: tuple[int, ...]) -> tuple[Product, ...]:
    """The products of a forward pass over m rows: A_{l-1} @ W_l for l = 1..L."""
    acts = ["X"] + [f"A{l}" for l in range(1, len(sizes) - 1)]
    return tuple(
        Product(f"{acts[l]}@W{l + 1}", (m, sizes[l]), (sizes[l], sizes[l + 1]))
        for l in range(len(sizes) - 1)
    )


def step_products(m: int, sizes: tuple[int, ...]) -> tuple[Product, ...]:
    """The products of one training step on m rows: the forward pass, then for l = L..1
    dW_l = A_{l-1}.T @ dZ_l and (for l > 1) dA_{l-1} = dZ_l @ W_l.T."""
    acts = ["X"] + [f"A{l}" for l in range(1, len(sizes) - 1)]
    backward = []
    for l in range(len(sizes) - 2, -1, -1):
        n_in, n_out = sizes[l], sizes[l + 1]
        backward.append(Product(f"{acts[l]}.T@dZ{l + 1}", (m, n_in), (m, n_out), left_T=True))
        if l > 0:
            backward.append(Product(f"dZ{l + 1}@W{l + 1}.T", (m, n_out), (n_in, n_out), right_T=True))
    return forward_products(m, sizes) + tuple(backward)


def batch_sizes(n: int, batch: int) -> tuple[int, ...]:
    """Row counts of the batches of an epoch over n rows: full batches, then the remainder."""
    return (batch,) * (n // batch) + ((n % batch,) if n % batch else ())


def timings(fn: Callable[[], object], *, min_repeat: int = 5, budget: float = 0.5) -> list[float]:
    """Seconds (by CLOCK) of repeated fn() calls: at least min_repeat, more within budget (wall)."""
    times = []
    start = time.perf_counter()
    while len(times) < min_repeat or time.perf_counter() - start < budget:
        t0 = CLOCK()
        fn()
        times.append(CLOCK() - t0)
    return times


def best_seconds(fn: Callable[[], object], *, min_repeat: int = 5, budget: float = 0.5) -> float:
    """Minimum of `timings(fn)`. Load from other processes only ever adds time, so on a shared
    machine the minimum is the steadiest estimate of what the code itself costs; floors and
    the figures rated against them both use it."""
    return min(timings(fn, min_repeat=min_repeat, budget=budget))


def product_operands(products: tuple[Product, ...], dtype: str = "float32") -> list[tuple]:
    """Random operands (a, b, out) for each product, transposed views where the step uses them."""
    rng = np.random.default_rng(SEED)
    dt = np.dtype(dtype)
    operands = []
    for p in products:
        a = rng.standard_normal(p.left, dtype=dt)
        b = rng.standard_normal(p.right, dtype=dt)
        a, b = (a.T if p.left_T else a), (b.T if p.right_T else b)
        operands.append((a, b, np.empty((a.shape[0], b.shape[1]), dtype=dt)))
    return operands


def run_products(operands: list[tuple]) -> None:
    """Each product into its preallocated output: allocation is not counted in the floor."""
    for a, b, out in operands:
        np.matmul(a, b, out=out)


@functools.cache
def products_seconds(products: tuple[Product, ...], dtype: str = "float32") -> float:
    """Best seconds for BLAS to run `products` back to back (after one warm-up run)."""
    operands = product_operands(products, dtype)
    run_products(operands)
    return best_seconds(lambda: run_products(operands), min_repeat=20, budget=0.2)


def step_floor_seconds(m: int, sizes: tuple[int, ...], dtype: str = "float32") -> float:
    """BLAS time of one training step's products (see the module docstring)."""
    return products_seconds(step_products(m, tuple(sizes)), dtype)


def epoch_floor_seconds(n: int, batch: int, sizes: tuple[int, ...], dtype: str = "float32") -> float:
    """BLAS time of one epoch: the step floor summed over the epoch's batches."""
    return sum(step_floor_seconds(m, sizes, dtype) for m in batch_sizes(n, batch))


def forward_floor_seconds(n: int, chunk: int, sizes: tuple[int, ...], dtype: str = "float32") -> float:
    """BLAS time of a forward pass over n rows taken `chunk` rows at a time."""
    return sum(products_seconds(forward_products(m, tuple(sizes)), dtype) for m in batch_sizes(n, chunk))


def step_flops(m: int, sizes: tuple[int, ...]) -> int:
    return sum(map(product_flops, step_products(m, tuple(sizes))))


def forward_flops(m: int, sizes: tuple[int, ...]) -> int:
    return sum(map(product_flops, forward_products(m, tuple(sizes))))


# ---------------------------------------------------------------- cached inputs


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


@functools.cache
def synthetic_data(n: int, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """n random images of Fashion-MNIST's shape: X (n, 784) uniform in [0, 1), y (n,) int64 in
    [0, 10). Timing does not depend on the pixel values; the same n gives the same bits."""
    rng = np.random.default_rng([SEED, n])
    X = rng.random((n, N_FEATURES), dtype=np.dtype(dtype))
    y = rng.integers(0, N_CLASSES, size=n)
    _read_only(X, y)
    return X, y


@functools.cache
def network(sizes: tuple[int, ...], dtype: str = "float32") -> fnn.MLP:
    """A He-initialised MLP with the given layer sizes, the same for every call."""
    net = fnn.init(np.random.default_rng(SEED), sizes, dtype=np.dtype(dtype))
    _read_only(*fnn.tree_leaves(net))
    return net


# ---------------------------------------------------------------- the base of floor-rated benchmarks


class FloorRated(abc.ABC):
    """A benchmark whose operation has a known FLOP count and BLAS floor.

    Subclasses set `self.flops` and `self.floor_seconds` in `setup` and implement `run()`;
    they inherit two asv `track_*` figures. The class is abstract, so asv skips it.
    """

    flops: int
    floor_seconds: float

    @abc.abstractmethod
    def run(self) -> object:
        """The operation being measured."""

    def track_gflops(self, *_):
        return self.flops / best_seconds(self.run) / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_floor_fraction(self, *_):
        return self.floor_seconds / best_seconds(self.run)

    track_floor_fraction.unit = "BLAS floor / time"
