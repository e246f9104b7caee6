"""Records print short: a network's repr is one line per layer at most, with shapes and dtype,
and never dumps an array."""

from __future__ import annotations

import numpy as np

import fnn


def test_default_network_prints_on_one_line():
    params = fnn.init(np.random.default_rng(0))
    assert repr(params) == "Network(Dense(784→128, float32), Relu(), Dense(128→10, float32))"
    assert fnn.MLP is fnn.Network
    assert repr(fnn.init(np.random.default_rng(0), (784, 10), dtype=np.float64)) == "Network(Dense(784→10, float64))"


def test_a_cnn_prints_one_line_per_layer_and_no_values():
    params = fnn.init(np.random.default_rng(0), (784, 128, 10), conv=(32, 64), activation="leaky_relu", dropout=0.25)
    lines = repr(params).splitlines()
    assert len(lines) == len(params.layers) + 2 and lines[0] == "Network(" and lines[-1] == ")"
    assert lines[1:5] == [
        "    Reshape(shape=(28, 28, 1)),",
        "    Conv2D(3×3, 1→32, stride=1, padding='valid', float32),",
        "    LeakyRelu(alpha=0.01),",
        "    MaxPool2D(size=2, stride=None),",
    ]
    assert "    Dropout(rate=0.25)," in lines and "    Flatten()," in lines and "    Dense(1600→128, float32)," in lines
    assert "array" not in repr(params) and "e-0" not in repr(params)


def test_gradients_and_views_print_as_their_network():
    rng = np.random.default_rng(1)
    params = fnn.init(rng, (784, 16, 10))
    _, g = fnn.value_and_grads(params, rng.random((4, 784), dtype=np.float32), np.arange(4))
    assert repr(g) == "Network(Dense(784→16, float32), Relu(), Dense(16→10, float32))"
    conv = fnn.Conv2D(K=np.zeros((5, 5, 3, 8)), b=np.zeros(8), stride=2, padding="same")
    assert repr(conv) == "Conv2D(5×5, 3→8, stride=2, padding='same', float64)"
