"""fnn.layers and fnn.gradcheck: layers composed in any order backprop correctly, each layer's
`backward` is the vector-Jacobian product of its `forward`, Dropout is unbiased and replayable,
static fields never become leaves, a user's own layer trains, and `init` builds the documented
stacks with the documented variances."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fnn
from fnn.gradcheck import (
    KINK_CLEARANCE,
    check_grads,
    check_random_network,
    kink_margin,
    parameter_names,
    replay,
)
from fnn.layers import Dense, Dropout, LeakyRelu, Relu, Sigmoid, Tanh

EPS = 1e-6  # step of the single-layer difference quotients
seeds = st.integers(0, 2**32 - 1)

# The whole-network checks on random examples use ε = 1e-5, near float64's optimum
# (u^(1/3) ≈ 5e-6 for rounding u ≈ 1e-16 against O(ε²) truncation). Measured on 1,600 random
# compositions, ε = 1e-6 (check_grads' default) left ~0.4% of examples above 1e-7 from rounding
# alone (their errors grow as ε shrinks); with ε = 1e-5 the only misses in ~15,000 were leaves
# whose gradient was small against the loss's rounding, which `checkable` rejects.
CHECK_EPS = 1e-5


def checkable(params, X, y, l2, masks) -> bool:
    """Whether central differences can resolve this example to a relative 1e-7 at CHECK_EPS.

    Two limits of the numeric side, not of backprop: a ReLU-family input within
    KINK_CLEARANCE·ε of 0 (a step may straddle the kink), and a leaf whose gradient is too
    small for the rounding of the loss J: each difference quotient carries ~u·|J|/ε ≈ 1e-11·|J|
    of noise (u ≈ 1e-16), a few times over, so a leaf whose norm is under 1e-3·max(1, |J|) (a
    saturated softmax, rows that cancel, a large l2 term in J) cannot be checked to 1e-7.
    Exact zeros (dead or dropped units) are fine: both sides are then exactly 0.
    Rejects ~3% of the random compositions, almost all for the kinks.
    """
    if kink_margin(params, X, masks) <= KINK_CLEARANCE * CHECK_EPS:
        return False
    J, g = fnn.value_and_grads(params, X, y, l2, replay(masks)())
    floor = 1e-3 * max(1.0, abs(J))
    return all(n == 0 or n > floor for n in map(np.linalg.norm, fnn.tree_leaves(g)))


def dense(rng: np.random.Generator, n_in: int, n_out: int) -> Dense:
    """A float64 Dense layer, W ~ N(0, 2/n_in), b ~ N(0, 0.1²) (generic bias gradients)."""
    return Dense(W=rng.standard_normal((n_in, n_out)) * np.sqrt(2 / n_in), b=0.1 * rng.standard_normal(n_out))


def batch(rng: np.random.Generator, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, 1): (m, n) float64 and y uniform in [0, k): (m,)."""
    return rng.standard_normal((m, n)), rng.integers(0, k, size=m)


def dense_names(n_dense: int) -> list[str]:
    return [f"{field}{i}" for i in range(1, n_dense + 1) for field in ("W", "b")]


# ---------------------------------------------------------------- whole networks vs central differences

activations = st.one_of(
    st.builds(Relu),
    st.builds(LeakyRelu, st.floats(0.01, 0.9)),
    st.builds(Tanh),
    st.builds(Sigmoid),
)


@st.composite
def compositions(draw):
    """(params, X, y, l2, rng): 0-3 hidden blocks Dense → any activation → (Dropout), widths 1-20,
    2-10 classes, float64; rng is the fixed Dropout Generator, None without Dropout."""
    rng = np.random.default_rng(draw(seeds))
    depth = draw(st.integers(0, 3))
    widths = [draw(st.integers(1, 20)) for _ in range(depth + 1)] + [draw(st.integers(2, 10))]
    with_dropout = draw(st.booleans())
    layers = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1]):
        layers += [dense(rng, n_in, n_out), draw(activations)]
        layers += [Dropout(draw(st.floats(0.05, 0.7)))] if with_dropout else []
    params = fnn.MLP(layers + [dense(rng, widths[-2], widths[-1])])
    X, y = batch(rng, draw(st.integers(1, 8)), widths[0], widths[-1])
    masks = rng.spawn(1)[0] if with_dropout and depth else None
    return params, X, y, draw(st.sampled_from([0.0, 0.05, 1.0])), masks


@settings(max_examples=20, deadline=None)
@given(compositions())
def test_backprop_matches_central_differences_for_any_composition(problem):
    params, X, y, l2, masks = problem
    assume(checkable(params, X, y, l2, masks))
    errors = check_grads(params, X, y, l2, masks, CHECK_EPS)
    assert [name for name, _ in errors] == dense_names(sum(isinstance(l, Dense) for l in params.layers))
    assert all(err < 1e-7 for _, err in errors), errors


stacks = st.sampled_from([
    lambda rng: (Tanh(), dense(rng, 5, 4), Dropout(0.3)),
    lambda rng: (dense(rng, 5, 6), Relu(), dense(rng, 6, 4), Dropout(0.5)),
    lambda rng: (Dropout(0.2), dense(rng, 5, 6), LeakyRelu(0.1), Dropout(0.4), dense(rng, 6, 4), Sigmoid()),
    lambda rng: (Sigmoid(), dense(rng, 5, 4), Tanh()),
])


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(stacks, seeds)
def test_stacks_that_start_and_end_with_layers_without_parameters(stack, seed):
    rng = np.random.default_rng(seed)
    params = fnn.MLP(stack(rng))
    X, y = batch(rng, 6, 5, 4)
    masks = np.random.default_rng(seed + 1)
    assume(checkable(params, X, y, 0.5, masks))
    errors = check_grads(params, X, y, 0.5, masks, CHECK_EPS)
    assert [name for name, _ in errors] == dense_names(sum(isinstance(l, Dense) for l in params.layers))
    assert all(err < 1e-7 for _, err in errors), errors


def test_check_grads_replays_the_rng_and_leaves_the_callers_untouched():
    rng = np.random.default_rng(0)
    params = fnn.MLP((dense(rng, 4, 6), Tanh(), Dropout(0.5), dense(rng, 6, 3)))
    X, y = batch(rng, 5, 4, 3)
    masks = np.random.default_rng(1)
    before = masks.bit_generator.state
    assert all(err < 1e-7 for _, err in check_grads(params, X, y, 0.1, masks))
    assert masks.bit_generator.state == before
    # Sharing one advancing Generator between the evaluations breaks the check: each one would
    # see new masks. (What `replay` prevents, shown by doing without it.)
    shared = np.random.default_rng(1)
    numeric = fnn.numeric_grads(lambda p: fnn.loss(p, X, y, 0.1, shared), params)
    analytic = fnn.grads(params, X, y, 0.1, np.random.default_rng(1))
    assert max(fnn.tree_leaves(fnn.relative_error(analytic, numeric))) > 1e-3


# ---------------------------------------------------------------- check_random_network and kink_margin


@pytest.mark.parametrize(
    "activation, dropout", [("relu", 0.0), ("leaky_relu", 0.3), ("tanh", 0.5), ("sigmoid", 0.0)]
)
def test_check_random_network_names_every_parameter_and_passes(activation, dropout):
    errors = check_random_network(
        np.random.default_rng(0), sizes=(7, 5, 4, 3), batch=5, l2=0.5, activation=activation, dropout=dropout
    )
    assert [name for name, _ in errors] == dense_names(3)
    assert all(err < 1e-7 for _, err in errors), errors


def test_check_random_network_is_seeded_and_rejects_a_bad_batch():
    assert check_random_network(np.random.default_rng(4), (5, 4, 3), dropout=0.2) == check_random_network(
        np.random.default_rng(4), (5, 4, 3), dropout=0.2
    )
    with pytest.raises(ValueError, match="batch must be a positive int"):
        check_random_network(np.random.default_rng(0), batch=0)


def test_kink_margin_is_the_smallest_input_of_any_relu_family_layer():
    rng = np.random.default_rng(0)
    first, second = dense(rng, 4, 5), dense(rng, 5, 3)
    X = rng.standard_normal((6, 4))
    Z1 = X @ first.W + first.b
    Z2 = np.maximum(Z1, 0) @ second.W + second.b
    assert kink_margin(fnn.MLP((first, Relu(), second)), X) == np.abs(Z1).min()
    assert kink_margin(fnn.MLP((first, Relu(), second, LeakyRelu(0.1))), X) == min(np.abs(Z1).min(), np.abs(Z2).min())
    assert kink_margin(fnn.MLP((Relu(), first)), X) == np.abs(X).min()
    assert kink_margin(fnn.MLP((first, Tanh(), second, Sigmoid())), X) == np.inf
    assert kink_margin(fnn.MLP((first,)), X) == np.inf


def test_kink_margin_sees_the_dropout_masks_it_is_given_without_advancing_them():
    rng = np.random.default_rng(0)
    first, second = dense(rng, 4, 5), dense(rng, 5, 3)
    X = rng.standard_normal((6, 4))
    M = Dropout(0.5).forward(X, np.random.default_rng(7))[1]
    masks = np.random.default_rng(7)
    before = masks.bit_generator.state
    params = fnn.MLP((Dropout(0.5), first, Relu(), second))
    assert kink_margin(params, X, masks) == np.abs((X * M) @ first.W + first.b).min()
    assert kink_margin(params, X) == np.abs(X @ first.W + first.b).min() != kink_margin(params, X, masks)
    assert masks.bit_generator.state == before
    # a dropped unit feeding a ReLU sits exactly on its kink
    assert kink_margin(fnn.MLP((first, Dropout(0.5), Relu(), second)), X, masks) == 0.0


# ---------------------------------------------------------------- each layer's backward is a VJP


def random_layer(kind: str, rng: np.random.Generator, n: int):
    """A built-in layer taking n inputs, with random parameters / hyper-parameters."""
    return {
        "Dense": lambda: dense(rng, n, n + 2),
        "Relu": Relu,
        "LeakyRelu": lambda: LeakyRelu(float(rng.uniform(0.01, 0.9))),
        "Tanh": Tanh,
        "Sigmoid": Sigmoid,
        "Dropout": lambda: Dropout(float(rng.uniform(0.1, 0.8))),
    }[kind]()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["Dense", "Relu", "LeakyRelu", "Tanh", "Sigmoid", "Dropout"]), seeds, st.integers(1, 6), st.integers(1, 8))
def test_each_layers_backward_is_the_vector_jacobian_product_of_its_forward(kind, seed, m, n):
    # For any direction V: <dZ, (f(A + εV) - f(A - εV)) / 2ε> = <dZ, J V> + O(ε²) = <Jᵀ dZ, V>,
    # and backward's dA must be Jᵀ dZ. The same for a direction in parameter space.
    rng = np.random.default_rng(seed)
    layer = random_layer(kind, rng, n)
    A = rng.standard_normal((m, n))
    A += np.sign(A) * 0.05  # clear of ReLU kinks: ε·|V| moves A by ~1e-6
    fresh = replay(np.random.default_rng(seed + 1))  # Dropout: the same mask in every call
    Z, cache = layer.forward(A, fresh())
    dZ, V = rng.standard_normal(Z.shape), rng.standard_normal(A.shape)
    A0, dZ0 = A.copy(), dZ.copy()
    grads, dA = layer.backward(cache, dZ)
    assert type(grads) is type(layer) and dA.shape == A.shape
    assert np.array_equal(A, A0) and np.array_equal(dZ, dZ0)  # inputs unchanged

    def out(lay, inputs):
        return lay.forward(inputs, fresh())[0]

    numeric = np.vdot(dZ, (out(layer, A + EPS * V) - out(layer, A - EPS * V)) / (2 * EPS))
    tol = 1e-8 * np.linalg.norm(dZ) * np.linalg.norm(V)
    assert np.isclose(numeric, np.vdot(dA, V), rtol=1e-6, atol=tol)

    # Parameters (Dense's W and b; nothing for the others): a random direction per leaf.
    Vp = fnn.tree_map(lambda p: rng.standard_normal(p.shape), layer)
    plus = fnn.tree_map(lambda p, v: p + EPS * v, layer, Vp)
    minus = fnn.tree_map(lambda p, v: p - EPS * v, layer, Vp)
    numeric = np.vdot(dZ, (out(plus, A) - out(minus, A)) / (2 * EPS))
    assert np.isclose(numeric, fnn.tree.tree_vdot(grads, Vp), rtol=1e-6, atol=tol)
    if kind == "Dense":  # and each parameter on its own
        for field in ("W", "b"):
            Vf = attrs.evolve(fnn.tree_zeros_like(layer), **{field: getattr(Vp, field)})
            plus = fnn.tree_map(lambda p, v: p + EPS * v, layer, Vf)
            minus = fnn.tree_map(lambda p, v: p - EPS * v, layer, Vf)
            numeric = np.vdot(dZ, (out(plus, A) - out(minus, A)) / (2 * EPS))
            assert np.isclose(numeric, np.vdot(getattr(grads, field), getattr(Vp, field)), rtol=1e-6, atol=tol)


# ---------------------------------------------------------------- Dropout


def test_dropout_is_the_identity_without_an_rng():
    A = np.random.default_rng(0).standard_normal((4, 5))
    dZ = np.random.default_rng(1).standard_normal((4, 5))
    Z, cache = Dropout(0.5).forward(A, None)
    assert np.array_equal(Z, A)
    assert np.array_equal(Dropout(0.5).backward(cache, dZ)[1], dZ)
    rng = np.random.default_rng(2)
    assert not np.array_equal(Dropout(0.5).forward(A, rng)[0], A)  # but not while training


def test_dropout_with_the_same_rng_state_draws_the_same_mask():
    A = np.random.default_rng(0).standard_normal((50, 40))
    first = Dropout(0.4).forward(A, np.random.default_rng(3))[0]
    again = Dropout(0.4).forward(A, np.random.default_rng(3))[0]
    other = Dropout(0.4).forward(A, np.random.default_rng(4))[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_a_fraction_1_minus_rate_scaled_by_1_over_1_minus_rate(dtype):
    # N = 10⁶ entries of A = 1, rate p = 0.3: each Z entry is 1/(1-p) with probability 1-p, else
    # 0, so E[Z] = 1 and sd(Z) = sqrt(p/(1-p)); the mean of N is within 5 standard errors
    # sd/sqrt(N) of 1, and the kept fraction within 5·sqrt(p(1-p)/N) of 1-p (fails w.p. ~6e-7).
    p, N = 0.3, 1000 * 1000
    Z, M = Dropout(p).forward(np.ones((1000, 1000), dtype=dtype), np.random.default_rng(0))
    assert Z.dtype == dtype
    assert abs(Z.mean(dtype=np.float64) - 1) < 5 * np.sqrt(p / (1 - p) / N)
    kept = Z != 0
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / N)
    # kept units are scaled by exactly 1/(1-p), the others are 0
    A = np.random.default_rng(1).uniform(1, 2, size=(300, 200)).astype(dtype)
    Z = Dropout(p).forward(A, np.random.default_rng(2))[0]
    kept = Z != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_array_equal(Z[kept], A[kept] * dtype(1 / (1 - p)))


@pytest.mark.parametrize("rate", [1, 1.0, -0.1, True, "0.5", float("nan")])
def test_dropout_rejects_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)


# ---------------------------------------------------------------- static fields


def mixed_net(rng: np.random.Generator) -> fnn.MLP:
    return fnn.MLP((dense(rng, 4, 5), LeakyRelu(0.2), Dropout(0.3), dense(rng, 5, 3)))


def assert_same_structure(tree, params) -> None:
    """Same layer types and hyper-parameters, leaves of the same shapes."""
    assert [type(l) for l in tree.layers] == [type(l) for l in params.layers]
    assert [fnn.tree.static_fields(l) for l in tree.layers] == [fnn.tree.static_fields(l) for l in params.layers]
    assert [np.shape(x) for x in fnn.tree_leaves(tree)] == [np.shape(x) for x in fnn.tree_leaves(params)]


def test_hyper_parameters_are_not_leaves_and_survive_tree_map():
    assert fnn.tree_leaves(LeakyRelu(0.2)) == [] and fnn.tree_leaves(Dropout(0.3)) == []
    params = mixed_net(np.random.default_rng(0))
    assert len(fnn.tree_leaves(params)) == 4
    doubled = fnn.tree_map(lambda x: 2 * x, params)
    assert_same_structure(doubled, params)
    assert doubled.layers[1].alpha == 0.2 and doubled.layers[2].rate == 0.3
    assert np.array_equal(doubled.layers[0].W, 2 * params.layers[0].W)


@pytest.mark.parametrize("make", [lambda: fnn.adam(0.01), lambda: fnn.sgd(0.1, momentum=0.9)])
def test_optimizer_state_and_updates_keep_the_params_structure(make):
    rng = np.random.default_rng(0)
    params = mixed_net(rng)
    X, y = batch(rng, 8, 4, 3)
    opt = make()
    state = opt.init(params)
    updates, state = opt.update(fnn.grads(params, X, y, 0.0, rng), state, params)
    assert_same_structure(updates, params)
    new = fnn.apply_updates(params, updates)
    assert_same_structure(new, params)
    assert not np.array_equal(new.layers[0].W, params.layers[0].W)
    # the chain's first state holds Adam's moments mu, nu (or SGD's velocity): params-shaped
    moments = [tree for tree in attrs.asdict(state[0], recurse=False).values() if isinstance(tree, fnn.MLP)]
    assert len(moments) == (2 if isinstance(state[0], fnn.optim.AdamState) else 1)
    for tree in moments:
        assert_same_structure(tree, params)


# ---------------------------------------------------------------- user-defined layers


def sigmoid(A: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * A))


@attrs.frozen
class Swish:
    """Z = A·σ(A); dA = dZ ⊙ (σ + A·σ·(1 - σ))."""

    def forward(self, A, rng):
        S = sigmoid(A)
        return A * S, (A, S)

    def backward(self, cache, dZ):
        A, S = cache
        return self, dZ * (S + A * S * (1 - S))


@attrs.frozen
class WrongSwish(Swish):
    """Swish with the classic slip: the derivative of σ alone, forgetting the product rule."""

    def backward(self, cache, dZ):
        A, S = cache
        return self, dZ * (S * (1 - S))


@attrs.frozen(eq=False)
class Scale:
    """Z = A ⊙ a, a learnable per-unit gain. a: (n,); da = Σ_i dZ[i] ⊙ A[i], dA = dZ ⊙ a."""

    a: np.ndarray

    def forward(self, A, rng):
        return A * self.a, A

    def backward(self, A, dZ):
        return Scale(a=(dZ * A).sum(axis=0)), dZ * self.a


@attrs.frozen(eq=False)
class Affine:
    """Z = A ⊙ ab[0] + ab[1]: a field holding two arrays. ab: ((n,), (n,))."""

    ab: tuple

    def forward(self, A, rng):
        return A * self.ab[0] + self.ab[1], A

    def backward(self, A, dZ):
        return Affine(ab=((dZ * A).sum(axis=0), dZ.sum(axis=0))), dZ * self.ab[0]


def test_a_user_layer_passes_the_gradient_check_and_trains():
    rng = np.random.default_rng(0)
    params = fnn.MLP((dense(rng, 6, 8), Swish(), Dropout(0.2), dense(rng, 8, 4), Swish()))
    X, y = batch(rng, 16, 6, 4)
    masks = np.random.default_rng(1)
    errors = check_grads(params, X, y, 0.1, masks)
    assert [name for name, _ in errors] == dense_names(2)
    assert all(err < 1e-7 for _, err in errors), errors
    losses = []
    for _ in range(10):
        value, g = fnn.value_and_grads(params, X, y, 0.1)
        params = fnn.apply_updates(params, fnn.tree_map(lambda x: -0.5 * x, g))
        losses.append(value)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0]


def test_check_grads_catches_a_wrong_backward():
    rng = np.random.default_rng(0)
    first, second = dense(rng, 6, 8), dense(rng, 8, 4)
    X, y = batch(rng, 16, 6, 4)
    wrong = check_grads(fnn.MLP((first, WrongSwish(), second)), X, y)
    assert dict(wrong)["W2"] < 1e-7  # the layers after the slip are right
    assert dict(wrong)["W1"] > 1e-2 and dict(wrong)["b1"] > 1e-2


def test_user_layers_with_parameters_are_named_by_field_and_checked():
    rng = np.random.default_rng(0)
    params = fnn.MLP((
        dense(rng, 5, 6), Tanh(), Scale(a=rng.uniform(0.5, 2, 6)), Relu(),
        Affine(ab=(rng.uniform(0.5, 2, 6), 0.1 * rng.standard_normal(6))), dense(rng, 6, 3),
    ))
    assert parameter_names(params) == ["W1", "b1", "a2", "ab3[0]", "ab3[1]", "W4", "b4"]
    X, y = batch(rng, 7, 5, 3)
    assert checkable(params, X, y, 0.3, None)
    errors = check_grads(params, X, y, 0.3)
    assert [name for name, _ in errors] == parameter_names(params)
    assert all(err < 1e-7 for _, err in errors), errors


# ---------------------------------------------------------------- init


@pytest.mark.parametrize(
    "activation, variance",
    [
        ("relu", lambda n_in, n_out: 2 / n_in),
        ("leaky_relu", lambda n_in, n_out: 2 / n_in),
        ("tanh", lambda n_in, n_out: 2 / (n_in + n_out)),
        ("sigmoid", lambda n_in, n_out: 2 / (n_in + n_out)),
    ],
)
def test_init_uses_he_for_the_relu_family_and_glorot_for_tanh_and_sigmoid(activation, variance):
    # 400·300 = 120,000 entries: the sample std is within ~0.2% (one standard error) of σ, and
    # He (σ² = 2/400) and Glorot (σ² = 2/700) differ by 32%, so 5% separates them safely.
    params = fnn.init(np.random.default_rng(0), (400, 300, 200), activation=activation, dtype=np.float64)
    dense_layers = [l for l in params.layers if isinstance(l, Dense)]
    assert [type(l) for l in params.layers] == [Dense, fnn.layers.ACTIVATIONS[activation], Dense]
    for layer in dense_layers:
        n_in, n_out = layer.W.shape
        assert abs(layer.W.std() / np.sqrt(variance(n_in, n_out)) - 1) < 0.05
        assert not layer.b.any()


def test_init_of_two_sizes_is_softmax_regression():
    params = fnn.init(np.random.default_rng(0), (784, 10))
    assert len(params.layers) == 1 and isinstance(params.layers[0], Dense)
    assert params.layers[0].W.shape == (784, 10) and params.layers[0].b.shape == (10,)


def test_init_inserts_dropout_after_each_hidden_activation():
    params = fnn.init(np.random.default_rng(0), (5, 4, 3, 2), activation="tanh", dropout=0.25)
    assert [type(l) for l in params.layers] == [Dense, Tanh, Dropout, Dense, Tanh, Dropout, Dense]
    assert [l.rate for l in params.layers if isinstance(l, Dropout)] == [0.25, 0.25]
    assert [type(l) for l in fnn.init(np.random.default_rng(0), (5, 4, 2)).layers] == [Dense, Relu, Dense]
