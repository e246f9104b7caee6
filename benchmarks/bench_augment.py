"""fnn.augment: one batch distorted (images per second), and what augmentation adds to a training
epoch of the 784-128-10 MLP and to the steps of the 32-64 CNN.

The epoch classes time the fold with and without `augment=`; their `track_cost_ratio` times the
two in pairs (plain, augmented, plain, ...) and divides the minima, so load from other processes
touches both alike. The same pairs, and scipy.ndimage doing the elastic distortion, print with

    python -m benchmarks.bench_augment [--rounds 3] [--keep-freed-memory] [--clock cpu]

(one BLAS thread; the fnn command keeps freed memory, see `fnn.allocator`).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import toolz

import fnn
from benchmarks import common
from fnn.augment import distort, parse, transform
from fnn.training import Batch, batches, copy_state, init_state, train_step

SPECS = ["shift", "affine", "elastic", "shift,affine,elastic"]
CNN_STEPS = 40  # steps of the CNN per measurement: every step of an epoch costs the same
ROUNDS = 3


def paired_minima(first, second, rounds: int = ROUNDS) -> tuple[float, float]:
    """(min seconds of first(), min seconds of second()) over `rounds` turns of one call each."""
    times: tuple[list, list] = ([], [])
    for _ in range(rounds):
        for fn, seen in zip((first, second), times):
            t0 = common.CLOCK()
            fn()
            seen.append(common.CLOCK() - t0)
    return min(times[0]), min(times[1])


class Distort:
    """`distort(rng, X, parse(spec))` on one batch of images (rows of 784 float32)."""

    params = (SPECS, [128])
    param_names = ["spec", "batch"]

    def setup(self, spec, batch):
        self.X = common.synthetic_data(batch)[0]
        self.augmentation = parse(spec)
        self.rng = np.random.default_rng(common.SEED)

    def run(self):
        return distort(self.rng, self.X, self.augmentation)

    def time_distort(self, *_):
        self.run()

    def track_images_per_second(self, *_):
        return len(self.X) / common.best_seconds(self.run)

    track_images_per_second.unit = "images/s"


class AugmentedEpoch:
    """One SGD (momentum 0.9) epoch of 784-128-10 over N_TRAIN rows in batches of 128, each state
    donated (as `fit` runs it), with every batch distorted by `spec` ("none": the plain epoch)."""

    params = (["none", "shift", "shift,affine,elastic"],)
    param_names = ["spec"]
    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, spec):
        self.X, self.y = common.synthetic_data(common.N_TRAIN)
        net = common.network((common.N_FEATURES, 128, common.N_CLASSES))
        optimizer = fnn.sgd(0.05, momentum=0.9)
        self.state = init_state(net, optimizer)
        self.plain = partial(train_step, optimizer=optimizer, donate=True)
        self.step = partial(self.plain, augment=transform(parse(spec)))

    def epoch(self, step):
        rng = np.random.default_rng(common.SEED)
        return toolz.reduce(step, batches(rng, self.X, self.y, 128, 1), copy_state(self.state))

    def time_epoch(self, *_):
        self.epoch(self.step)

    def track_cost_ratio(self, *_):
        plain, augmented = paired_minima(lambda: self.epoch(self.plain), lambda: self.epoch(self.step))
        return augmented / plain

    track_cost_ratio.unit = "augmented / plain epoch"


class AugmentedCNNSteps:
    """CNN_STEPS donated steps of the 32-64 CNN (`fnn train --conv 32,64 --hidden 128`), batches
    of 128, with every batch distorted by `spec`; its ratio is that of a whole epoch."""

    params = (["none", "shift,affine,elastic"],)
    param_names = ["spec"]
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, spec):
        # 40 batches of 128 out of 600 rows; when the tests shrink N_TRAIN, one batch of 15
        size, steps = min(128, common.N_TRAIN // 20), max(1, min(CNN_STEPS, common.N_TRAIN // 1500))
        X, y = common.synthetic_data(max(common.N_TRAIN // 100, size))
        net = fnn.init(np.random.default_rng(common.SEED), (784, 128, 10), conv=(32, 64))
        optimizer = fnn.sgd(0.05, momentum=0.9)
        self.state = init_state(net, optimizer)
        self.batches = [Batch(X[i : i + size], y[i : i + size], end=False) for i in range(0, len(X) - size + 1, size)]
        self.batches = (self.batches * steps)[:steps]
        self.plain = partial(train_step, optimizer=optimizer, donate=True)
        self.step = partial(self.plain, augment=transform(parse(spec)))

    def steps(self, step):
        return toolz.reduce(step, self.batches, copy_state(self.state))

    def time_steps(self, *_):
        self.steps(self.step)

    def track_cost_ratio(self, *_):
        plain, augmented = paired_minima(lambda: self.steps(self.plain), lambda: self.steps(self.step))
        return augmented / plain

    track_cost_ratio.unit = "augmented / plain steps"


# ---------------------------------------------------------------- the printed table


def scipy_elastic(rng, X):
    """The elastic distortion of `distort(..., parse("elastic"))` by scipy.ndimage: gaussian_filter
    for the field, map_coordinates (order 1, zero outside) for the sampling."""
    from scipy import ndimage

    m = len(X)
    images = X.reshape(m, 28, 28)
    field = ndimage.gaussian_filter(rng.random((m, 2, 28, 28), dtype=np.float32) * 2 - 1, (0, 0, 4, 4)) * 34
    grid = np.indices((28, 28), dtype=np.float32)
    coords = np.concatenate([np.broadcast_to(np.arange(m, dtype=np.float32)[:, None, None, None], (m, 1, 28, 28)),
                             grid + field], axis=1).transpose(1, 0, 2, 3)
    return ndimage.map_coordinates(images, coords, order=1, mode="constant", cval=0.0).reshape(m, -1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_augment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="pairs per ratio (the minimum of each side is kept)")
    parser.add_argument("--keep-freed-memory", action="store_true", help="fnn.allocator.keep_freed_memory() first")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: time.perf_counter; cpu: time.process_time, robust to other load")
    args = parser.parse_args(argv)
    common.CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}[args.clock]
    from threadpoolctl import threadpool_limits

    from benchmarks.__main__ import machine_line

    if args.keep_freed_memory:
        from fnn.allocator import keep_freed_memory

        keep_freed_memory()
    with threadpool_limits(1, user_api="blas"):
        print(machine_line() + f", clock {args.clock}, keep freed memory: {args.keep_freed_memory}")
        for spec in SPECS:
            bench = Distort()
            bench.setup(spec, 128)
            seconds = common.best_seconds(bench.run, min_repeat=50, budget=1.0)
            print(f"distort {spec:<22} batch 128: {seconds * 1e6:8.0f} us  {128 / seconds:>9,.0f} images/s")
        try:
            X, rng = common.synthetic_data(128)[0], np.random.default_rng(0)
            seconds = common.best_seconds(lambda: scipy_elastic(rng, X), min_repeat=10, budget=1.0)
            print(f"scipy.ndimage elastic{'':<16} batch 128: {seconds * 1e6:8.0f} us  {128 / seconds:>9,.0f} images/s")
        except ImportError:
            print("scipy is not installed: no scipy.ndimage comparison")
        for cls, specs in ((AugmentedEpoch, ["shift", "shift,affine,elastic"]), (AugmentedCNNSteps, ["shift,affine,elastic"])):
            for spec in specs:
                bench = cls()
                bench.setup(spec)
                run = bench.epoch if cls is AugmentedEpoch else bench.steps
                plain, augmented = paired_minima(lambda: run(bench.plain), lambda: run(bench.step), args.rounds)
                what = "784-128-10 epoch" if cls is AugmentedEpoch else f"CNN, {CNN_STEPS} steps"
                print(f"{what:<18} --augment {spec:<22} plain {plain:7.3f} s  augmented {augmented:7.3f} s  "
                      f"ratio {augmented / plain:5.3f} (min of {args.rounds} pairs)")


if __name__ == "__main__":
    main()
