"""fnn.nn: the forward pass and one forward+backward pass (value_and_grads), rated against the
BLAS floor of their matrix products."""

from __future__ import annotations

import fnn
from benchmarks import common

GRID = ([128, 1024], [128, 512], ["float32", "float64"])
GRID_NAMES = ["batch", "hidden", "dtype"]


class Forward(common.FloorRated):
    """Logits of one batch: forward(net, X)."""

    params = GRID
    param_names = GRID_NAMES

    def setup(self, batch, hidden, dtype):
        sizes = (common.N_FEATURES, hidden, common.N_CLASSES)
        self.net = common.network(sizes, dtype)
        self.X = common.synthetic_data(batch, dtype)[0]
        self.flops = common.forward_flops(batch, sizes)
        self.floor_seconds = common.forward_floor_seconds(batch, batch, sizes, dtype)

    def run(self):
        return fnn.forward(self.net, self.X)

    def time_forward(self, *_):
        self.run()


class ValueAndGrads(common.FloorRated):
    """Loss and gradients of one batch, as the training loop calls it (fnn.backprop: no input validation)."""

    params = GRID
    param_names = GRID_NAMES

    def setup(self, batch, hidden, dtype):
        sizes = (common.N_FEATURES, hidden, common.N_CLASSES)
        self.net = common.network(sizes, dtype)
        self.X, self.y = common.synthetic_data(batch, dtype)
        self.flops = common.step_flops(batch, sizes)
        self.floor_seconds = common.step_floor_seconds(batch, sizes, dtype)

    def run(self):
        return fnn.backprop(self.net, self.X, self.y)

    def time_value_and_grads(self, *_):
        self.run()

    def time_value_and_grads_checked(self, *_):
        """With input validation: what a caller outside the training loop pays."""
        fnn.value_and_grads(self.net, self.X, self.y)
