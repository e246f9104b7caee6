"""fnn.optim and fnn.training: one optimizer update, one train_step, one epoch of 60,000 rows at
batch 128, and the evaluation of 10,000 images, rated against the BLAS floor where the
matrix products are the work.

The data are random images of Fashion-MNIST's shape (benchmarks/common.py): the time of a
dense network does not depend on the pixel values.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import toolz

import fnn
from benchmarks import common
from fnn.optim import adam, apply_updates, sgd
from fnn.training import Batch, batches, copy_state, evaluate, init_state, train_step
from fnn.tree import ravel, ravel_spec

OPTIMIZERS = {"sgd": partial(sgd, 0.05, momentum=0.9), "adam": partial(adam, 1e-3)}


def sizes_for(hidden: int) -> tuple[int, int, int]:
    return (common.N_FEATURES, hidden, common.N_CLASSES)


class OptimizerUpdate:
    """optimizer.update(grads, state, params) then apply_updates on the flat buffers the training
    loop keeps (`fnn.tree.ravel`), nothing donated: the arithmetic of one step after backprop,
    for SGD with momentum 0.9 and Adam."""

    params = (["sgd", "adam"], [128, 512], ["float32"])
    param_names = ["optimizer", "hidden", "dtype"]

    def setup(self, optimizer, hidden, dtype):
        net = common.network(sizes_for(hidden), dtype)
        spec = ravel_spec(net)
        X, y = common.synthetic_data(128, dtype)
        self.net, self.grads = ravel(spec, net), ravel(spec, fnn.grads(net, X, y))
        self.optimizer = OPTIMIZERS[optimizer]()
        # a state one update in, so momentum/moments are non-zero as in training
        _, self.state = self.optimizer.update(self.grads, self.optimizer.init(self.net), self.net)

    def time_update(self, *_):
        updates, _ = self.optimizer.update(self.grads, self.state, self.net)
        apply_updates(self.net, updates)


class TrainStep(common.FloorRated):
    """One train_step (value_and_grads, SGD momentum update, apply) on one batch, nothing donated
    (the state is used again)."""

    params = ([128, 1024], [128, 512], ["float32"])
    param_names = ["batch", "hidden", "dtype"]

    def setup(self, batch, hidden, dtype):
        net = common.network(sizes_for(hidden), dtype)
        optimizer = sgd(0.05, momentum=0.9)
        self.step = partial(train_step, optimizer=optimizer, l2=0.0)
        self.state = init_state(net, optimizer)
        self.batch = Batch(*common.synthetic_data(batch, dtype), end=False)
        self.flops = common.step_flops(batch, sizes_for(hidden))
        self.floor_seconds = common.step_floor_seconds(batch, sizes_for(hidden), dtype)

    def run(self):
        return self.step(self.state, self.batch)

    def time_train_step(self, *_):
        self.run()


class Epoch(common.FloorRated):
    """One epoch: the fold of train_step over 60,000 rows in batches of 128, batches gathered
    from one fresh permutation (as `fit` and `fnn train` run it), with SGD (momentum 0.9) or Adam;
    each state donated to the next step, as a fold may (the run starts from a copy)."""

    params = ([128], [128, 512], ["float32"], ["sgd", "adam"])
    param_names = ["batch", "hidden", "dtype", "optimizer"]
    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self, batch, hidden, dtype, optimizer="sgd"):
        self.X, self.y = common.synthetic_data(common.N_TRAIN, dtype)
        net = common.network(sizes_for(hidden), dtype)
        optimizer = OPTIMIZERS[optimizer]()
        self.step = partial(train_step, optimizer=optimizer, l2=0.0, donate=True)
        self.state = init_state(net, optimizer)
        self.batch_size = batch
        self.flops = sum(common.step_flops(m, sizes_for(hidden)) for m in common.batch_sizes(common.N_TRAIN, batch))
        self.floor_seconds = common.epoch_floor_seconds(common.N_TRAIN, batch, sizes_for(hidden), dtype)

    def run(self):
        rng = np.random.default_rng(common.SEED)
        return toolz.reduce(self.step, batches(rng, self.X, self.y, self.batch_size, 1), copy_state(self.state))

    def time_epoch(self, *_):
        self.run()

    def peakmem_epoch(self, *_):
        self.run()


class Evaluate(common.FloorRated):
    """(loss, accuracy) of 10,000 images with `evaluate`'s default chunking: validation of the
    inputs, the forward pass, log-softmax and the counts."""

    params = ([128, 512], ["float32"])
    param_names = ["hidden", "dtype"]
    chunk = 8192  # evaluate's default

    def setup(self, hidden, dtype):
        self.X, self.y = common.synthetic_data(common.N_TEST, dtype)
        self.net = common.network(sizes_for(hidden), dtype)
        self.flops = common.forward_flops(common.N_TEST, sizes_for(hidden))
        self.floor_seconds = common.forward_floor_seconds(common.N_TEST, self.chunk, sizes_for(hidden), dtype)

    def run(self):
        return evaluate(self.net, self.X, self.y, chunk=self.chunk)

    def time_evaluate(self, *_):
        self.run()

    def peakmem_evaluate(self, *_):
        self.run()
