"""fnn.augment: the distortions' geometry, their randomness, their text form, and augmentation
inside the training fold (seeded, resumable, never applied to what is evaluated)."""

from __future__ import annotations

import json
from functools import partial

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn import augment
from fnn.augment import Augmentation, affine, describe, distort, elastic, gaussian_matrix, parse, shift, warp
from fnn.cli import main
from fnn.training import Batch, augment_rng, init_state, step_rng, train_step

TRANSFORMS = {
    "shift": shift,
    "affine": affine,
    "elastic": elastic,
    "all": partial(distort, augmentation=parse("shift,affine,elastic")),
}


def digits(m: int = 6, side: int = 28, margin: int = 0, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """m random 'digits' (m, side²) in [0, 1], ink only `margin` pixels or more inside the frame."""
    rng = np.random.default_rng(seed)
    images = np.zeros((m, side, side), dtype)
    inner = side - 2 * margin
    images[:, margin : margin + inner, margin : margin + inner] = rng.random((m, inner, inner)) * (
        rng.random((m, inner, inner)) < 0.3
    )
    return images.reshape(m, -1)


def zero_filled_shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[i, j] = image[i - dy, j - dx], 0 outside: the definition, one image at a time."""
    H, W = image.shape
    out = np.zeros_like(image)
    for i in range(H):
        for j in range(W):
            if 0 <= i - dy < H and 0 <= j - dx < W:
                out[i, j] = image[i - dy, j - dx]
    return out


# ---------------------------------------------------------------- every transform


@pytest.mark.parametrize("name", TRANSFORMS)
@pytest.mark.parametrize("shape, dtype", [((5, 784), np.float32), ((5, 28, 28), np.float64), ((5, 28, 28, 1), np.float32)])
def test_keeps_shape_and_dtype_leaves_its_input_and_changes_it(name, shape, dtype):
    X = digits(5, dtype=dtype).reshape(shape)
    before = X.copy()
    X.flags.writeable = False  # any write into X raises
    out = TRANSFORMS[name](np.random.default_rng(1), X)
    assert out.shape == X.shape and out.dtype == X.dtype
    np.testing.assert_array_equal(X, before)
    assert not np.array_equal(out, X)  # its default strengths change the images


@pytest.mark.parametrize("name, zero", [
    ("shift", dict(max_shift=0)), ("affine", dict(rotation=0, scale=0, shear=0)), ("elastic", dict(alpha=0)),
])
def test_zero_strength_is_the_identity_bit_for_bit(name, zero):
    X = digits(4)
    out = TRANSFORMS[name](np.random.default_rng(2), X, **zero)
    np.testing.assert_array_equal(out, X)
    assert out is not X and not np.shares_memory(out, X)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_the_same_rng_gives_the_same_images(name):
    X = digits(4)
    first, again = (TRANSFORMS[name](np.random.default_rng(7), X) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, TRANSFORMS[name](np.random.default_rng(8), X))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    strengths=st.tuples(st.integers(0, 4), st.floats(0, 179), st.floats(0, 0.9), st.floats(0, 2), st.floats(0, 80),
                        st.floats(0.5, 8)),
    low=st.sampled_from([0.0, -1.0]),
)
def test_pixels_stay_within_the_inputs_range_and_zero(seed, strengths, low):
    rng = np.random.default_rng(seed)
    X = (low + (1 - low) * rng.random((3, 100))).astype(np.float32)  # 10x10 images in [low, 1]
    X[0] = 1.0  # an image of ones: interpolation must not round past 1
    out = distort(rng, X, Augmentation(*strengths))
    assert out.min() >= min(X.min(), 0) and out.max() <= X.max()


def test_turning_one_distortion_on_leaves_the_others_draws_alone():
    X = digits(5)
    both = distort(np.random.default_rng(3), X, Augmentation(shift=2, alpha=30))
    shifted = shift(np.random.default_rng(3), X, 2)
    # the elastic field is drawn after the shifts: the same shifts, then a displacement on top
    alone = distort(np.random.default_rng(3), X, Augmentation(shift=2, alpha=1e-9))
    np.testing.assert_allclose(alone, shifted, atol=1e-5)
    assert not np.allclose(both, shifted)


def test_compose_applies_each_transform_with_its_own_child_stream():
    X = digits(4)
    composed = augment.compose(shift, elastic)(np.random.default_rng(9), X)
    first, second = np.random.default_rng(9).spawn(2)
    np.testing.assert_array_equal(composed, elastic(second, shift(first, X)))


# ---------------------------------------------------------------- the geometry


def test_shift_moves_whole_pixels_zero_fills_and_keeps_the_mass_in_frame():
    X = digits(40, margin=3)  # ink at least 3 pixels from every edge
    out = shift(np.random.default_rng(4), X, max_shift=3)
    np.testing.assert_allclose(out.sum(axis=1), X.sum(axis=1), rtol=1e-6)  # pixel mass kept
    seen = set()
    for x, y in zip(X.reshape(-1, 28, 28), out.reshape(-1, 28, 28)):
        # ink stays in frame, so rolling (which wraps) is the zero-filled shift here
        moves = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if np.array_equal(np.roll(x, (dy, dx), (0, 1)), y)]
        assert moves, "an output is not its input moved by whole pixels"
        seen.add(moves[0])
    assert len(seen) > 10  # the shifts vary from image to image


def test_shifts_past_the_edge_zero_fill_instead_of_wrapping():
    X = digits(3, side=6)
    shifts = np.array([[2, -1], [-3, 3], [0, 0]])
    out = warp(X, shifts=shifts).reshape(-1, 6, 6)
    for x, y, (dy, dx) in zip(X.reshape(-1, 6, 6), out, shifts):
        np.testing.assert_array_equal(y, zero_filled_shift(x, dy, dx))


def test_warp_names_a_part_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"field must have shape \(3, 2, 6, 6\)"):
        warp(digits(3, side=6), field=np.zeros((3, 6, 6)))
    with pytest.raises(TypeError, match="whole pixels"):
        warp(digits(3, side=6), shifts=np.full((3, 2), 0.5))


def test_a_quarter_turn_matrix_rotates_about_the_centre():
    X = digits(3, side=9).reshape(3, 9, 9)
    quarter = np.array([[0.0, 1.0], [-1.0, 0.0]])  # out[i, j] = X[j, H - 1 - i]: np.rot90
    out = warp(X, matrices=np.repeat(quarter[None], 3, axis=0))
    np.testing.assert_allclose(out, np.rot90(X, axes=(1, 2)), atol=1e-6)


def test_half_a_pixel_of_field_averages_neighbours_and_fades_into_zero_at_the_edge():
    X = digits(2, side=5).reshape(2, 5, 5).astype(np.float64)
    field = np.zeros((2, 2, 5, 5))
    field[:, 0] = 0.5  # each output pixel reads halfway to the row below
    out = warp(X, field=field)
    expected = 0.5 * X + 0.5 * np.concatenate([X[:, 1:], np.zeros((2, 1, 5))], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_gaussian_matrix_is_scipys_gaussian_filter_with_rows_summing_to_one():
    ndimage = pytest.importorskip("scipy.ndimage")
    G = gaussian_matrix(28, 4.0)
    np.testing.assert_allclose(G.sum(axis=1), 1.0, rtol=1e-12)
    v = np.random.default_rng(5).random((3, 28))
    np.testing.assert_allclose(v @ G.T, ndimage.gaussian_filter1d(v, 4.0, axis=1), rtol=1e-10)


def test_the_elastic_field_has_the_spread_alpha_and_sigma_promise():
    # interior std of alpha·(G U Gᵀ) = alpha·sqrt(Var U)·Σ g², Var U ≈ 1/3
    alpha, sigma = 34.0, 4.0
    field = augment._elastic_field(np.random.default_rng(6), (400, 28, 28), alpha, sigma, np.float64)
    g = gaussian_matrix(28, sigma)[14]
    expected = alpha * np.sqrt(1 / 3) * (g**2).sum()
    assert abs(field[:, :, 10:18, 10:18].std() / expected - 1) < 0.05
    assert abs(field.mean()) < 0.05 * expected


# ---------------------------------------------------------------- the text form


def test_names_alone_take_the_defaults_and_the_text_round_trips():
    a = parse("shift,affine,elastic")
    assert a == augment.DEFAULTS
    assert parse("shift=3,affine=15:0.05,elastic=:5") == attrs.evolve(
        augment.DEFAULTS, shift=3, rotation=15.0, scale=0.05, alpha=34.0, sigma=5.0
    )
    assert parse("affine=:0.2") == Augmentation(rotation=augment.DEFAULTS.rotation, scale=0.2, shear=augment.DEFAULTS.shear)
    assert parse(describe(a)) == a and describe(a) == "shift=2,affine=10:0.1:0.2,elastic=34:4"
    assert parse("none") is None and parse("") is None and describe(None) == "none"


@pytest.mark.parametrize("text, needle", [
    ("rotate", "unknown distortion 'rotate'"), ("shift=x", "N must be a whole number"), ("shift=1.5", "N must"),
    ("shift,shift", "given twice"), ("affine=1:2:3:4", "at most 3 values"), ("affine=180", "DEGREES must be"),
    ("affine=:1", "SCALE must be"), ("elastic=nan", "ALPHA must be a finite"), ("elastic=3:0", "SIGMA must be"),
])
def test_bad_texts_say_which_part_is_wrong(text, needle):
    with pytest.raises(ValueError, match=needle):
        parse(text)


# ---------------------------------------------------------------- inside the fold


def small_problem(n: int = 96, seed: int = 0):
    """8x8 'digits' in [0, 1] of 3 classes, and an 64-16-3 network."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, 64), dtype=np.float32)
    y = rng.integers(0, 3, n)
    return X, y, fnn.init(np.random.default_rng(seed), (64, 16, 3))


def test_augmentation_draws_a_stream_of_its_own_from_the_step():
    state = init_state(fnn.init(np.random.default_rng(0), (4, 3, 2), dropout=0.5), fnn.sgd(0.1), seed=11)
    a, d = augment_rng(state).random(8), step_rng(state).random(8)
    assert not np.allclose(a, d)
    np.testing.assert_array_equal(a, augment_rng(state).random(8))  # a function of (seed, step)
    assert not np.allclose(a, augment_rng(attrs.evolve(state, step=1)).random(8))


def test_a_step_trains_on_the_distorted_batch_and_leaves_the_batch_alone():
    X, y, net = small_problem(32)
    opt, aug = fnn.sgd(0.1), Augmentation(shift=1, rotation=10)
    state = init_state(net, opt, seed=3)
    batch = Batch(X, y, end=False)
    stepped = train_step(state, batch, opt, augment=augment.transform(aug))
    np.testing.assert_array_equal(batch.X, X)
    by_hand = train_step(state, Batch(distort(augment_rng(state), X, aug), y, end=False), opt)
    np.testing.assert_array_equal(stepped.flat, by_hand.flat)
    assert not np.array_equal(stepped.flat, train_step(state, batch, opt).flat)


def test_fit_with_augmentation_is_reproducible_and_resumes_to_the_same_bits():
    X, y, net = small_problem()
    run = partial(fnn.fit, params=net, optimizer=fnn.sgd(0.1, momentum=0.9), train=(X, y), dev=(X[:24], y[:24]),
                  epochs=4, batch_size=32, augment=parse("shift=1,affine,elastic"))
    saved = []
    whole = run(np.random.default_rng(5), checkpoint=saved.append)
    again = run(np.random.default_rng(5))
    np.testing.assert_array_equal(whole.state.flat, again.state.flat)
    plain = fnn.fit(np.random.default_rng(5), net, fnn.sgd(0.1, momentum=0.9), (X, y), epochs=4, batch_size=32)
    assert not np.array_equal(whole.state.flat, plain.state.flat)
    resumed = run(np.random.default_rng(5), resume=saved[1])  # from the end of epoch 2
    np.testing.assert_array_equal(resumed.state.flat, whole.state.flat)
    assert resumed.history.drop(columns="seconds").equals(whole.history.drop(columns="seconds"))


def test_only_training_batches_are_ever_augmented():
    X, y, net = small_problem()
    dev = (X[:24] + 2.0, y[:24])  # rows that are in no training batch
    calls = []

    def spy(rng, rows):
        calls.append(rows.copy())
        return rows.copy()

    result = fnn.fit(np.random.default_rng(0), net, fnn.sgd(0.1), (X, y), dev, epochs=2, batch_size=40, augment=spy)
    assert sum(len(c) for c in calls) == 1 + 2 * len(X)  # one row to check the transform, then each epoch's rows
    train_rows = {row.tobytes() for row in X}
    assert all(row.tobytes() in train_rows for c in calls for row in c)
    assert result.history["dev_acc"].notna().all()


def test_a_transform_that_changes_the_rows_shape_or_dtype_is_refused_before_training():
    X, y, net = small_problem()
    with pytest.raises(ValueError, match="shape and dtype"):
        fnn.fit(np.random.default_rng(0), net, fnn.sgd(0.1), (X, y), epochs=1, augment=lambda rng, X: X.astype(np.float64))
    with pytest.raises(ValueError, match="square grayscale images"):
        narrow = fnn.init(np.random.default_rng(0), (60, 16, 3))
        fnn.fit(np.random.default_rng(0), narrow, fnn.sgd(0.1), (X[:, :60], y), epochs=1, augment=parse("shift"))


def test_train_config_takes_the_text_and_survives_json():
    config = fnn.TrainConfig(augment="shift,elastic=20")
    assert config.augment == Augmentation(shift=2, alpha=20.0, sigma=4.0)
    saved = json.loads(json.dumps(attrs.asdict(config)))  # as a checkpoint or model file keeps it
    assert fnn.TrainConfig(**saved) == config
    assert fnn.TrainConfig().augment is None


# ---------------------------------------------------------------- the edges


def test_the_augment_flag_reaches_the_config_of_train_and_tune():
    from fnn.cli import build_parser

    for argv in (["train", "--augment", "shift=3,elastic"], ["tune", "--augment", "shift=3,elastic"]):
        args = build_parser().parse_args(argv)
        assert flags_config(args).augment == Augmentation(shift=3, alpha=34.0, sigma=4.0)
    assert flags_config(build_parser().parse_args(["train"])).augment is None


def flags_config(args):
    from fnn.cli import flags

    return flags.config(args, **({} if args.command == "train" else {"hidden": (16,), "l2": 0.0, "lr": 0.1}))


@pytest.mark.slow  # 2 s: six figures
def test_fnn_train_augment_records_it_and_draws_what_the_network_sees(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--epochs", "1", "--hidden", "16", "--no-progress", "--augment", "shift=3,elastic",
                   "--out", str(out)])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["augment"] == attrs.asdict(Augmentation(shift=3, alpha=34.0, sigma=4.0))
    assert (out / "augmented_samples.png").read_bytes()[:4] == b"\x89PNG"
    _, meta = fnn.load_model(out / "model.npz")
    assert fnn.TrainConfig(**meta["training_config"]).augment == Augmentation(shift=3, alpha=34.0)


def test_a_bad_augment_flag_is_one_line_naming_the_flag(capsys):
    assert main(["train", "--augment", "shift=two", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--augment" in err and "'shift=two'" in err


@pytest.mark.slow  # importing scikit-learn takes seconds
def test_the_sklearn_estimator_takes_augment():
    pytest.importorskip("sklearn")
    from fnn.sklearn import FNNClassifier

    X, y, _ = small_problem(60)
    model = FNNClassifier(hidden=(8,), epochs=1, augment="shift=1", random_state=0).fit(X, y)
    assert model.config_.augment == Augmentation(shift=1)
    with pytest.raises(ValueError, match="augment"):
        FNNClassifier(augment="spin").fit(X, y)


def test_the_figure_shows_each_digit_above_its_draws():
    from fnn.plots import augmented_samples

    figure = augmented_samples(np.random.default_rng(0), digits(10), parse("affine"), n=5, versions=2)
    assert len(figure.axes) == 15 and "affine=10:0.1:0.2" in figure._suptitle.get_text()


@pytest.mark.slow  # three short runs and their figures
def test_an_interrupted_augmented_run_resumes_from_its_checkpoint_file_to_the_same_bits(tmp_path, capsys, monkeypatch):
    import fnn.cli.runs as runs

    argv = ["train", "--epochs", "2", "--hidden", "16", "--no-progress", "--eval-every", "10", "--augment", "shift,elastic"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    real, saves = runs.save_checkpoint, []

    def save_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        saves.append(1)
        if len(saves) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save_then_interrupt)
    assert main([*argv, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(runs, "save_checkpoint", real)
    assert main(["train", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    whole, cut = (fnn.load_model(tmp_path / run / "model.npz")[0] for run in ("whole", "cut"))
    assert fnn.tree_allclose(whole, cut, rtol=0, atol=0)
