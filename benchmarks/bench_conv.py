"""fnn.conv: one Conv2D layer's forward and backward, and one training step of the CNN
`fnn train --conv 32,64 --hidden 128` builds, each rated against its GEMM floor: the same
matrix products (im2col's `cols @ K₂`, `colsᵀ @ dZ`, `dZ @ K[u, v]ᵀ` per kernel offset, and the
dense layers') timed alone in the same run."""

from __future__ import annotations

from functools import partial

import numpy as np

import fnn
from benchmarks import common
from benchmarks.common import Product
from fnn.conv import Conv2D, output_size
from fnn.training import Batch, copy_state, init_state, train_step

CONV = (32, 64)
KERNEL = 3
IMAGE = (28, 28, 1)
HIDDEN = 128


def conv_products(m: int, shape: tuple[int, int, int], c_out: int, k: int, input_grad: bool) -> tuple[Product, ...]:
    """The GEMMs of one "valid" stride-1 Conv2D on m images of `shape` (H, W, C_in): forward,
    dK and (when input_grad) dA, one product per kernel offset."""
    H, W, c_in = shape
    rows = m * output_size(H, k, 1, "valid") * output_size(W, k, 1, "valid")
    products = (
        Product("cols@K2", (rows, k * k * c_in), (k * k * c_in, c_out)),
        Product("cols.T@dZ", (rows, k * k * c_in), (rows, c_out), left_T=True),
    )
    if input_grad:
        products += tuple(Product(f"dZ@K[{u},{v}].T", (rows, c_out), (c_in, c_out), right_T=True)
                          for u in range(k) for v in range(k))
    return products


def cnn_step_products(m: int) -> tuple[Product, ...]:
    """Every GEMM of one training step of the CNN: its convolutions, then its dense layers (the
    first Dense's dA too, which flows back into the convolutions)."""
    shape, products = IMAGE, ()
    for i, c_out in enumerate(CONV):
        products += conv_products(m, shape, c_out, KERNEL, input_grad=i > 0)
        size = output_size(shape[0], KERNEL, 1, "valid") // 2
        shape = (size, size, c_out)
    sizes = (int(np.prod(shape)), HIDDEN, common.N_CLASSES)
    return products + common.step_products(m, sizes) + (
        Product("dZ1@W1.T", (m, sizes[1]), (sizes[0], sizes[1]), right_T=True),
    )


def flops(products: tuple[Product, ...]) -> int:
    return sum(map(common.product_flops, products))


class ConvLayer(common.FloorRated):
    """Conv2D forward then backward (dK, db and dA) on a batch of 128, the CNN's two layers."""

    params = (["conv1", "conv2"],)
    param_names = ["layer"]

    def setup(self, layer):
        rng = np.random.default_rng(common.SEED)
        shape, c_out = ((28, 28, 1), CONV[0]) if layer == "conv1" else ((13, 13, CONV[0]), CONV[1])
        self.conv = Conv2D(rng.standard_normal((KERNEL, KERNEL, shape[2], c_out), dtype=np.float32) * 0.1,
                           np.zeros(c_out, np.float32))
        self.A = rng.random((128, *shape), dtype=np.float32)
        Z, _ = self.conv.forward(self.A, None)
        self.dZ = rng.standard_normal(Z.shape, dtype=np.float32)
        products = conv_products(128, shape, c_out, KERNEL, input_grad=True)
        self.flops, self.floor_seconds = flops(products), common.products_seconds(products)

    def run(self):
        _, cache = self.conv.forward(self.A, None)
        return self.conv.backward(cache, self.dZ)

    def time_forward_backward(self, *_):
        self.run()


class CNNStep(common.FloorRated):
    """One donated train_step (SGD momentum) of the 32-64 CNN on a batch of 128 (the state is
    copied first: a benchmark runs the step again)."""

    params = ([128],)
    param_names = ["batch"]

    def setup(self, batch):
        net = fnn.init(np.random.default_rng(common.SEED), (784, HIDDEN, 10), conv=CONV, kernel=KERNEL)
        optimizer = fnn.sgd(0.05, momentum=0.9)
        self.step = partial(train_step, optimizer=optimizer, donate=True)
        self.state = init_state(net, optimizer)
        self.batch = Batch(*common.synthetic_data(batch), end=False)
        products = cnn_step_products(batch)
        self.flops, self.floor_seconds = flops(products), common.products_seconds(products)

    def run(self):
        return self.step(copy_state(self.state), self.batch)

    def time_step(self, *_):
        self.run()
