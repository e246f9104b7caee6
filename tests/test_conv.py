"""Convolutional layers: Conv2D, MaxPool2D, Flatten and Reshape against central differences,
against a direct (loop over kernel offsets) convolution, on ties, and in `init`'s CNN stacks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.conv import Conv2D, MaxPool2D, output_size


def direct_conv(A, K, b, stride, padding):
    """Z[n, i, j, o] = Σ_{u, v, c} P[n, i·s + u, j·s + v, c] K[u, v, c, o] + b[o], by offsets."""
    kh, kw, _, _ = K.shape
    m, H, W, _ = A.shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    if padding == "same":
        ph, pw = max((Ho - 1) * stride + kh - H, 0), max((Wo - 1) * stride + kw - W, 0)
        A = np.pad(A, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    Z = np.zeros((m, Ho, Wo, K.shape[3])) + b
    for u in range(kh):
        for v in range(kw):
            Z += np.einsum("nijc,co->nijo", A[:, u : u + stride * Ho : stride, v : v + stride * Wo : stride], K[u, v])
    return Z


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31), h=st.integers(3, 9), w=st.integers(3, 9), c_in=st.integers(1, 3),
    c_out=st.integers(1, 4), k=st.sampled_from([1, 2, 3]), stride=st.sampled_from([1, 2]),
    padding=st.sampled_from(["valid", "same"]),
)
def test_conv2d_forward_equals_the_direct_sum(seed, h, w, c_in, c_out, k, stride, padding):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((2, h, w, c_in))
    layer = Conv2D(rng.standard_normal((k, k, c_in, c_out)), rng.standard_normal(c_out), stride=stride, padding=padding)
    Z, _ = layer.forward(A, None)
    np.testing.assert_allclose(Z, direct_conv(A, layer.K, layer.b, stride, padding), rtol=1e-12, atol=1e-12)
    if padding == "same":
        assert Z.shape[1:3] == (-(-h // stride), -(-w // stride))


@pytest.mark.parametrize(
    "shape, conv, pool, activation",
    [
        ((7, 9, 2), dict(stride=2, padding="same"), (3, 2), fnn.Tanh()),  # odd sizes, overlapping pool
        ((8, 8, 1), dict(stride=1, padding="valid"), (2, None), fnn.Sigmoid()),
        ((9, 7, 3), dict(stride=1, padding="same"), (2, None), fnn.LeakyRelu(0.1)),  # pooling on odd widths
        ((10, 10, 2), dict(stride=2, padding="valid"), (2, 1), fnn.Tanh()),
    ],
)
def test_central_differences_agree_with_backprop(shape, conv, pool, activation):
    rng = np.random.default_rng(1)
    c_in = shape[2]
    first = Conv2D(rng.standard_normal((3, 3, c_in, 4)) * 0.5, rng.standard_normal(4) * 0.1, **conv)
    second = Conv2D(rng.standard_normal((2, 2, 4, 3)) * 0.5, rng.standard_normal(3) * 0.1, padding="same")
    head = [fnn.Reshape(shape), first, activation, second, activation, MaxPool2D(*pool), fnn.Flatten()]
    X = rng.standard_normal((4, int(np.prod(shape))))
    width = fnn.nn.forward_pass(fnn.Network(head), X)[0][-1].shape[1]
    net = fnn.Network([*head, fnn.Dense(rng.standard_normal((width, 3)) * 0.3, rng.standard_normal(3) * 0.1)])
    errors = dict(fnn.check_grads(net, X, rng.integers(0, 3, 4), l2=0.2))
    assert set(errors) == {"K1", "b1", "K2", "b2", "W3", "b3"}
    assert max(errors.values()) < 1e-7, errors


def test_max_pool_gives_a_tie_all_to_the_first_maximum_in_row_major_order():
    A = np.array([[5.0, 5.0], [5.0, 1.0]]).reshape(1, 2, 2, 1)
    pool = MaxPool2D(2)
    Z, cache = pool.forward(A, None)
    _, dA = pool.backward(cache, np.full((1, 1, 1, 1), 3.0))
    assert Z.item() == 5.0 and dA.reshape(2, 2).tolist() == [[3.0, 0.0], [0.0, 0.0]]


def test_max_pool_drops_rows_and_columns_that_fill_no_window():
    A = np.arange(5 * 5, dtype=np.float64).reshape(1, 5, 5, 1)
    Z, cache = MaxPool2D(2).forward(A, None)
    assert Z[0, :, :, 0].tolist() == [[6.0, 8.0], [16.0, 18.0]]
    _, dA = MaxPool2D(2).backward(cache, np.ones_like(Z))
    assert dA[0, 4].sum() == 0 and dA[0, :, 4].sum() == 0 and dA.sum() == 4


def test_init_builds_the_cnn_of_the_issue_and_infers_the_flat_width():
    net = fnn.init(np.random.default_rng(0), (784, 128, 10), conv=(32, 64))
    names = [type(layer).__name__ for layer in net.layers]
    assert names == ["Reshape", "Conv2D", "Relu", "MaxPool2D", "Conv2D", "Relu", "MaxPool2D", "Flatten", "Dense", "Relu", "Dense"]
    assert net.layers[1].K.shape == (3, 3, 1, 32) and net.layers[4].K.shape == (3, 3, 32, 64)
    assert net.layers[8].W.shape == (1600, 128)  # 28 -> 26 -> 13 -> 11 -> 5: 5·5·64
    assert fnn.layer_sizes(net) == (784, 128, 10)
    K = net.layers[4].K
    assert abs(K.std() - np.sqrt(2 / (9 * 32))) < 0.01  # He, fan-in kh·kw·C_in
    assert all(leaf.dtype == np.float32 for leaf in fnn.tree_leaves(net))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sizes=(100, 10), conv=(8,)), "input width"),
        (dict(sizes=(784, 10), conv=(8, 8, 8, 8)), "shrinks"),
        (dict(sizes=(784, 10), conv=(0,)), "conv"),
        (dict(sizes=(784, 10), conv=(8,), kernel=0), "kernel"),
        (dict(sizes=(784, 10), conv=(8,), image_shape=(28, 28)), "image_shape"),
    ],
)
def test_init_refuses_conv_arguments_that_cannot_work(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fnn.init(np.random.default_rng(0), **kwargs)


def test_a_cnn_trains_on_real_digits():
    """A small CNN learns the sample's digits: a few epochs on 1,000 of them beat 0.8 on 500 others."""
    data = fnn.load_dataset("sample")
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(data.X))
    train, test = rows[:1000], rows[1000:1500]
    net = fnn.init(rng, (784, 32, 10), conv=(4,))
    result = fnn.fit(rng, net, fnn.sgd(0.05, 0.9), (data.X[train], data.y[train]), epochs=4, batch_size=32)
    assert fnn.training.evaluate(result.best_params, data.X[test], data.y[test])[1] > 0.8


def test_conv_layers_save_and_load_bit_for_bit(tmp_path):
    net = fnn.init(np.random.default_rng(0), (784, 16, 10), conv=(3, 5))
    path = fnn.save_model(tmp_path / "cnn.npz", net, {"class_names": list("0123456789")})
    loaded, _ = fnn.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in net.layers]
    assert loaded.layers[0].shape == (28, 28, 1) and loaded.layers[3].size == 2
    X = np.random.default_rng(1).random((7, 784), dtype=np.float32)
    assert np.array_equal(fnn.forward(loaded, X), fnn.forward(net, X))


def test_serve_answers_with_a_cnn(tmp_path):
    """The drawing page's model may be a CNN: its answer is the library's prediction."""
    from fnn.serve.app import answer, make_app

    net = fnn.init(np.random.default_rng(0), (784, 16, 10), conv=(3,))
    x = np.random.default_rng(1).random(784, dtype=np.float32)
    reply = answer(make_app(net, {"class_names": list("0123456789")}), x)
    assert int(reply["label"]) == int(fnn.predict(net, x[None, :])[0])


def test_a_resumed_cnn_run_ends_with_the_same_bits(tmp_path):
    from fnn.checkpoint import load_checkpoint, save_checkpoint

    data = fnn.load_dataset("sample")
    X, y = data.X[:300], data.y[:300]
    net = fnn.init(np.random.default_rng(0), (784, 16, 10), conv=(3,), dropout=0.2)
    opt = fnn.adam(1e-2)
    saved = []
    whole = fnn.fit(np.random.default_rng(1), net, opt, (X, y), epochs=2, batch_size=64, eval_every=3, checkpoint=saved.append)
    path = save_checkpoint(tmp_path / "checkpoint.npz", saved[1], {})
    monitor, _ = load_checkpoint(path, net, opt)
    resumed = fnn.fit(np.random.default_rng(1), net, opt, (X, y), epochs=2, batch_size=64, eval_every=3, resume=monitor)
    assert all(np.array_equal(a, b) for a, b in zip(fnn.tree_leaves(whole.state.params), fnn.tree_leaves(resumed.state.params)))
