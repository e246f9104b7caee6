"""The floor: this machine's BLAS on exactly the matrix products of one training step."""

from __future__ import annotations

from benchmarks import common


class StepProducts(common.FloorRated):
    """X@W1, A1@W2, A1.T@dZ2, dZ2@W2.T, X.T@dZ1 with one step's shapes, into preallocated
    outputs. Its floor fraction is 1 by construction; its GFLOP/s is the machine's figure."""

    params = ([128, 1024], [128, 512], ["float32", "float64"])
    param_names = ["batch", "hidden", "dtype"]

    def setup(self, batch, hidden, dtype):
        products = common.step_products(batch, (common.N_FEATURES, hidden, common.N_CLASSES))
        self.operands = common.product_operands(products, dtype)
        self.flops = sum(map(common.product_flops, products))
        self.floor_seconds = common.products_seconds(products, dtype)

    def run(self):
        common.run_products(self.operands)

    def time_step_products(self, *_):
        self.run()


class EachProduct(common.FloorRated):
    """Each product of a 784-128-10 float32 step on its own, to see which one is slow."""

    params = ([128], [p.name for p in common.step_products(128, (784, 128, 10))])
    param_names = ["batch", "product"]

    def setup(self, batch, product):
        (p,) = [p for p in common.step_products(batch, (784, 128, 10)) if p.name == product]
        self.operands = common.product_operands((p,))
        self.flops = common.product_flops(p)
        self.floor_seconds = common.products_seconds((p,))

    def run(self):
        common.run_products(self.operands)

    def time_product(self, *_):
        self.run()
