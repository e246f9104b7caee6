"""Parameter records: a network *is* its tree of layers.

`Network(layers=(Dense(W1, b1), Relu(), Dense(W2, b2), ...))`: the layers run in order, each a
record from `fnn.layers`, `fnn.conv` (or the user's own) carrying its forward and backward
rule. Gradients, optimizer updates and optimizer state reuse these same records.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from fnn import checks
from fnn.conv import Conv2D, MaxPool2D, conv_stack_shape
from fnn.layers import ACTIVATIONS, Dense, Dropout, Flatten, LeakyRelu, Relu, Reshape, Sigmoid, Tanh
from fnn.tree import tree_leaves

BUILT_IN = {cls.__name__: cls for cls in (Dense, Relu, LeakyRelu, Tanh, Sigmoid, Dropout, Flatten, Reshape, Conv2D, MaxPool2D)}
"""The layer classes fnn ships, by name (what model files name them by)."""


@attrs.frozen(eq=False, repr=False)
class Network:
    """A stack of layers, applied in order; softmax + cross-entropy is the head (see `fnn.nn`)."""

    layers: tuple = attrs.field(converter=tuple)

    def __repr__(self) -> str:
        """One line, `Network(Dense(784→128, float32), Relu(), Dense(128→10, float32))`, or one
        line per layer when that would pass 100 characters (a CNN)."""
        layers = [repr(layer) for layer in self.layers]
        line = f"Network({', '.join(layers)})"
        return line if len(line) <= 100 else "Network(\n" + "".join(f"    {layer},\n" for layer in layers) + ")"


MLP = Network  # its name before convolutional layers, kept so that code written for it runs


def layer_sizes(params: Network) -> tuple[int, ...]:
    """(n_0, n_1, ..., n_L): the input width, then the output width of each Dense layer; n_0 is
    the first layer's `n_in` when it tells one (a CNN's Reshape: 784), else the first Dense's.

    For the stacks `init` builds this is (inputs, hidden widths..., classes).
    """
    dense = [layer for layer in params.layers if isinstance(layer, Dense)]
    if not dense:
        raise ValueError("the network has no Dense layer, so it has no layer sizes")
    n_0 = getattr(params.layers[0], "n_in", None) or dense[0].W.shape[0]
    return (int(n_0),) + tuple(int(layer.W.shape[1]) for layer in dense)


def params_dtype(params) -> np.dtype:
    """The float dtype of the parameters (that of the first leaf; float32 if there are none)."""
    leaves = tree_leaves(params)
    return leaves[0].dtype if leaves else np.dtype(np.float32)


def init(
    rng: np.random.Generator,
    sizes: Sequence[int] = (784, 128, 10),
    activation: str = "relu",
    dropout: float = 0.0,
    dtype=np.float32,
    *,
    conv: Sequence[int] = (),
    kernel: int = 3,
    image_shape: Sequence[int] = (28, 28, 1),
) -> Network:
    """A network of widths `sizes`: Dense, activation, (Dropout) for each hidden layer, then a
    final Dense whose outputs are the logits. `sizes=(784, 10)` is softmax regression.

    With `conv` (channels per convolutional block, e.g. (32, 64)) the network is a CNN:
    Reshape(image_shape), then [Conv2D(kernel x kernel, "valid", stride 1) -> activation ->
    MaxPool2D(2)] for each entry, Flatten, and the dense stack. sizes[0] is still the input
    width, prod(image_shape) (784), and the first Dense takes the flattened width the conv
    blocks leave (28x28 -> 26 -> 13 -> 11 -> 5 for two 3x3 blocks: 5·5·64 = 1600).
    Kernels K: (kernel, kernel, C_in, C_out) follow the rule below with n_{l-1} = kernel²·C_in
    (its fan-in) and n_l = kernel²·C_out; biases 0.

    Weights W_l: (n_{l-1}, n_l) ~ N(0, σ²), biases b_l = 0, where
      relu, leaky_relu: σ² = 2 / n_{l-1} (He et al. 2015): half the units are off, so twice
          the variance keeps the activations' scale constant from layer to layer; the seed
          notebook uses the same rule (`randn * sqrt(2/n)`).
      tanh, sigmoid: σ² = 2 / (n_{l-1} + n_l) (Glorot & Bengio 2010): these units are near
          linear around 0, so the variance that preserves scale both forwards and backwards is
          the harmonic compromise between fan-in and fan-out.

    rng: the only source of randomness; the same seed gives the same bits.
    sizes: (n_0, ..., n_L), at least an input and an output width, each a positive int.
    activation: "relu", "leaky_relu", "tanh" or "sigmoid".
    dropout: rate of a Dropout layer after each hidden activation; 0 for none.
    dtype: float32 (default) or float64.
    conv, kernel, image_shape: the convolutional blocks (none by default), their square kernel
        size, and the (H, W, C) shape of each input row.
    """
    checks.generator("rng", rng)
    sizes = tuple(sizes)
    if len(sizes) < 2 or not all(checks.is_int(n) and n >= 1 for n in sizes):
        raise ValueError(f"sizes must be two or more positive ints (n_in, ..., n_classes), got {sizes}")
    checks.one_of("activation", activation, tuple(ACTIVATIONS))
    dropout = checks.fraction("dropout", dropout)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    act = ACTIVATIONS[activation]
    he = getattr(act, "relu_family", False)

    def weights(shape: tuple, fan_in: int, fan_out: int) -> np.ndarray:
        scale = np.sqrt((2.0 / fan_in) if he else (2.0 / (fan_in + fan_out)))
        return rng.standard_normal(shape, dtype=dtype) * dtype.type(scale)

    def dense(n_in: int, n_out: int) -> Dense:
        return Dense(W=weights((n_in, n_out), n_in, n_out), b=np.zeros(n_out, dtype=dtype))

    front = _conv_blocks(conv, kernel, image_shape, sizes[0], act, weights, dtype) if conv else []
    widths = (int(np.prod(conv_stack_shape(tuple(image_shape), conv, kernel))), *sizes[1:]) if conv else sizes
    hidden = [
        (dense(n_in, n_out), act()) + ((Dropout(dropout),) if dropout else ())
        for n_in, n_out in zip(widths[:-2], widths[1:-1])
    ]
    dense_stack = tuple(layer for block in hidden for layer in block) + (dense(widths[-2], widths[-1]),)
    return Network(layers=(*front, *dense_stack))


def _conv_blocks(conv, kernel, image_shape, n_0: int, act, weights, dtype) -> list:
    """Reshape, [Conv2D -> act -> MaxPool2D(2)] per entry of `conv`, Flatten (see `init`)."""
    conv, image_shape = tuple(conv), tuple(image_shape)
    if not all(checks.is_int(c) and c >= 1 for c in conv):
        raise ValueError(f"conv must be positive ints (channels per block), got {conv}")
    kernel = checks.positive_int("kernel", kernel)
    if len(image_shape) != 3 or not all(checks.is_int(d) and d >= 1 for d in image_shape):
        raise ValueError(f"image_shape must be (H, W, C), three positive ints, got {image_shape}")
    if n_0 != int(np.prod(image_shape)):
        raise ValueError(
            f"sizes[0] = {n_0} is the input width, but image_shape {image_shape} holds "
            f"{int(np.prod(image_shape))} values per row; pass sizes starting with {int(np.prod(image_shape))}"
        )
    conv_stack_shape(image_shape, conv, kernel)  # refuses blocks that shrink the images to nothing
    layers, c_in = [Reshape(image_shape)], image_shape[2]
    for c_out in conv:
        fan_in, fan_out = kernel * kernel * c_in, kernel * kernel * c_out
        K = weights((kernel, kernel, c_in, c_out), fan_in, fan_out)
        layers += [Conv2D(K=K, b=np.zeros(c_out, dtype=dtype)), act(), MaxPool2D(2)]
        c_in = c_out
    return [*layers, Flatten()]
