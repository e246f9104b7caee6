"""fnn.sklearn.FNNClassifier: a Pipeline + GridSearchCV with string labels, and the promises of
its docstring (the int random_state is fnn.train's seed, any width of X, validation split and
early stopping, errors raised at fit and naming the value, dtype, sparse X, partial_fit,
warm_start, sample weights, multilabel y). check_estimator and scikit-learn's own MLPClassifier
tests are in tests/test_sklearn_mlp.py."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import fnn
from fnn.config import TrainConfig, train
from fnn.data import load_dataset
from fnn.errors import TrainingDiverged

# scikit-learn takes 4 s to import: the `sk` fixture imports it (and fnn.sklearn) when the first
# of these tests runs, never while a `-m "not slow"` run collects them
pytestmark = pytest.mark.slow

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


@pytest.fixture(scope="module")
def sk() -> SimpleNamespace:
    """The scikit-learn names these tests use, and fnn.sklearn's (scikit-learn is in the `test` extra)."""
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fnn.sklearn import FNNClassifier

    return SimpleNamespace(
        GridSearchCV=GridSearchCV, cross_val_score=cross_val_score, make_pipeline=make_pipeline,
        StandardScaler=StandardScaler,
        FNNClassifier=FNNClassifier,
    )


@pytest.fixture(scope="module")
def digits():
    """600 sample digits as (X float32 in [0, 1], y int64)."""
    sample = load_dataset("sample")
    rows = np.random.default_rng(0).choice(len(sample.X), size=600, replace=False)
    return sample.X[rows], sample.y[rows]


def test_import_fnn_does_not_import_sklearn():
    code = "import sys, fnn, fnn.tune, fnn.cli; print('sklearn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_works_in_a_pipeline_and_grid_search_with_string_labels(sk, digits):
    X, y = digits
    labels = NAMES[y]
    pipeline = sk.make_pipeline(sk.StandardScaler(), sk.FNNClassifier(epochs=8, hidden=(32,), random_state=1))
    search = sk.GridSearchCV(pipeline, {"fnnclassifier__l2": [0.0, 1.0], "fnnclassifier__lr": [0.05, 0.2]}, cv=3)
    search.fit(X[:450], labels[:450])
    model = search.best_estimator_[-1]
    assert list(model.classes_) == sorted(NAMES) and model.n_features_in_ == 784
    predicted = search.predict(X[450:])
    assert set(predicted) <= set(NAMES)
    assert search.score(X[450:], labels[450:]) > 0.75  # 450 training digits, 8 epochs
    assert np.mean(sk.cross_val_score(sk.FNNClassifier(epochs=5, hidden=(16,)), X, labels, cv=2)) > 0.6


def test_an_int_random_state_trains_the_network_fnn_train_does(sk, digits):
    X, y = digits
    model = sk.FNNClassifier(epochs=2, hidden=(16,), l2=0.1, random_state=7).fit(X, y)
    config = TrainConfig(epochs=2, hidden=(16,), l2=0.1, seed=7)
    expected = train(np.random.default_rng(7), config, (X, y)).best_params
    assert model.config_ == config
    assert all(np.array_equal(a, b) for a, b in zip(fnn.tree_leaves(model.params_), fnn.tree_leaves(expected)))
    np.testing.assert_array_equal(model.predict_proba(X), fnn.predict_proba(expected, X))
    again = sk.FNNClassifier(epochs=2, hidden=(16,), l2=0.1, random_state=np.random.RandomState(3)).fit(X, y)
    fresh = [sk.FNNClassifier(epochs=1, hidden=(16,), random_state=None).fit(X, y).params_ for _ in range(2)]
    assert not np.array_equal(fnn.tree_leaves(fresh[0])[0], fnn.tree_leaves(fresh[1])[0])
    assert again.config_.seed != 7


def test_any_number_of_features_labels_and_inputs_left_unchanged(sk):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(120, 3))  # ints, 3 features
    y = np.where(X[:, 0] + X[:, 1] > 4, "big", "small").astype(object)
    X_before, y_before = X.copy(), y.copy()
    model = sk.FNNClassifier(epochs=30, hidden=(8,), lr=0.1, batch_size=32).fit(X, y)
    assert fnn.layer_sizes(model.params_) == (3, 8, 2) and model.n_features_in_ == 3
    assert fnn.layer_sizes(sk.FNNClassifier(epochs=1, hidden=5).fit(X, y).params_) == (3, 5, 2)  # an int: one layer
    assert list(model.classes_) == ["big", "small"] and model.predict(X).dtype == object
    assert model.predict_proba(X).shape == (120, 2) and model.score(X, y) > 0.8
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    with pytest.raises(ValueError, match="3 features"):
        model.predict(X[:, :2])


def test_validation_fraction_keeps_the_best_evaluation_and_allows_early_stopping(sk, digits):
    X, y = digits
    model = sk.FNNClassifier(epochs=40, hidden=(16,), validation_fraction=0.2, patience=2).fit(X, y)
    history = model.history_
    assert history["dev_acc"].notna().all() and model.stopped_ in ("completed", "early_stop")
    if model.stopped_ == "early_stop":
        assert len(history) < 40
    assert model.config_.patience == 2
    with pytest.raises(ValueError, match="patience needs a validation split"):
        sk.FNNClassifier(epochs=2, patience=2).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        sk.FNNClassifier(epochs=2, validation_fraction=1.5).fit(X, y)


@pytest.mark.parametrize(
    "params, named",
    [
        ({"activation": "swish"}, "activation"),
        ({"hidden": None}, "hidden"),
        ({"hidden": (64, 0)}, "hidden"),
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 0}, "batch"),
        ({"optimizer": "rmsprop"}, "optimizer"),
    ],
)
def test_bad_hyper_parameters_fail_at_fit_naming_them(sk, digits, params, named):
    model = sk.FNNClassifier(**params)  # scikit-learn stores them untouched
    assert model.get_params()[next(iter(params))] is next(iter(params.values()))
    with pytest.raises(ValueError, match=named):
        model.fit(*digits)


def test_one_class_is_predicted_and_a_diverging_run_warns_keeping_finite_params(sk, digits):
    from sklearn.exceptions import ConvergenceWarning

    X, y = digits
    one = sk.FNNClassifier(epochs=1).fit(X[:10], np.full(10, "seven"))
    assert list(one.predict(X[10:13])) == ["seven"] * 3 and one.predict_proba(X[:2]).shape == (2, 1)
    with pytest.warns(ConvergenceWarning, match="smaller lr"):
        model = sk.FNNClassifier(epochs=2, lr=1e30, schedule="constant").fit(X, y)
    assert model.stopped_ == "diverged"
    assert all(np.isfinite(leaf).all() for leaf in fnn.tree_leaves(model.params_))
    assert np.isfinite(model.predict_proba(X)).all()
    diverged = train(np.random.default_rng(0), TrainConfig(epochs=2, lr=1e30, schedule="constant"), (X, y))
    assert diverged.stopped == "diverged"  # fnn.train reports it; fnn.run (the CLI) raises TrainingDiverged


def test_conv_makes_a_cnn_that_learns_digits(sk, digits):
    X, y = digits
    model = sk.FNNClassifier(conv=(4,), hidden=(32,), epochs=10, random_state=0).fit(X[:450], y[:450])
    assert [type(layer).__name__ for layer in model.params_.layers][:4] == ["Reshape", "Conv2D", "Relu", "MaxPool2D"]
    assert model.score(X[450:], y[450:]) > 0.7
    with pytest.raises(ValueError, match="square"):
        sk.FNNClassifier(conv=(4,)).fit(X[:50, :100].reshape(50, 100)[:, :99], y[:50])


def blobs(n=240, seed=0, dtype=np.float64):
    """Three separable Gaussian blobs in 5 dimensions, standardised."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 5)) + 3 * np.eye(5)[y]
    return ((X - X.mean(0)) / X.std(0)).astype(dtype), y


def test_the_network_keeps_the_dtype_of_x_and_sparse_x_trains_as_dense(sk):
    from scipy import sparse

    X, y = blobs()
    for dtype in (np.float32, np.float64):
        model = sk.FNNClassifier(epochs=3, hidden=(8,)).fit(X.astype(dtype), y)
        assert {W.dtype for W in model.coefs_} == {np.dtype(dtype)}
        assert model.predict_proba(X.astype(dtype)).dtype == dtype
    X[np.abs(X) < 0.5] = 0.0
    dense = sk.FNNClassifier(epochs=3, hidden=(8,)).fit(X, y)
    csr = sk.FNNClassifier(epochs=3, hidden=(8,)).fit(sparse.csr_matrix(X), y)
    assert fnn.tree_allclose(dense.params_, csr.params_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(csr.predict_proba(sparse.csr_matrix(X)), dense.predict_proba(X), rtol=1e-10)


def test_predict_log_proba_is_the_log_of_predict_proba_without_underflow(sk):
    X, y = blobs()
    model = sk.FNNClassifier(epochs=20, hidden=(8,), optimizer="adam").fit(X, y)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), model.predict_proba(X), rtol=1e-12)
    far = X[:3] * 1e3  # probabilities that round to 0 still have a finite log
    assert np.isfinite(model.predict_log_proba(far)).all()


def test_partial_fit_continues_the_optimizer_and_counts_epochs_and_rows(sk):
    X, y = blobs()
    model = sk.FNNClassifier(hidden=(8,), optimizer="adam", batch_size=60)
    with pytest.raises(ValueError, match="classes must be passed"):
        model.partial_fit(X, y)
    for _ in range(3):
        model.partial_fit(X[:120], y[:120], classes=[0, 1, 2])
    adam_steps = model._opt_state[1].count  # (moments, count of the lr schedule)
    assert (model.n_iter_, model.t_, len(model.loss_curve_), adam_steps) == (1, 360, 3, 3 * 2)
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    with pytest.raises(ValueError, match="not one of classes_"):
        model.partial_fit(X[:5], np.array([0, 1, 2, 3, 0]))


def test_warm_start_continues_from_the_last_fit(sk):
    X, y = blobs()
    cold = sk.FNNClassifier(epochs=4, hidden=(8,), lr=0.05, schedule="constant")
    warm = sk.FNNClassifier(epochs=4, hidden=(8,), lr=0.05, schedule="constant", warm_start=True)
    first = cold.fit(X, y).loss_curve_[:]
    assert cold.fit(X, y).loss_curve_ == first  # without warm_start a fit starts over
    warm.fit(X, y)
    warm.fit(X, y)
    assert warm.n_iter_ == 4 and len(warm.loss_curve_) == 8 and warm.loss_curve_[:4] == first
    assert warm.loss_curve_[4] < first[0]  # the second fit starts from the first's params


def test_sample_weight_zero_is_as_if_the_row_were_absent(sk):
    X, y = blobs(n=90)
    w = np.ones(len(y))
    w[::4] = 0.0
    common = dict(epochs=5, hidden=(8,), batch_size="full", optimizer="gd", lr=0.3, l2=0.1)
    weighted = sk.FNNClassifier(**common).fit(X, y, sample_weight=w)
    dropped = sk.FNNClassifier(**common).fit(X[w > 0], y[w > 0])
    np.testing.assert_allclose(weighted.predict_proba(X), dropped.predict_proba(X), rtol=1e-10)


def test_multilabel_y_trains_sigmoid_outputs(sk):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 6))
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < -0.5], axis=1).astype(int)
    model = sk.FNNClassifier(epochs=60, hidden=(32,), optimizer="adam", lr=0.01).fit(X[:300], Y[:300])
    assert model.out_activation_ == "logistic" and model.n_outputs_ == 3 and list(model.classes_) == [0, 1, 2]
    assert model.predict(X[300:]).shape == (100, 3) and set(np.unique(model.predict(X[300:]))) <= {0, 1}
    assert model.score(X[300:], Y[300:]) > 0.85  # subset accuracy: every label of the row right
    proba = model.predict_proba(X[300:])
    np.testing.assert_array_equal(proba > 0.5, model.predict(X[300:]) == 1)


def test_verbose_prints_a_line_per_epoch(sk, capsys):
    X, y = blobs()
    sk.FNNClassifier(epochs=3, hidden=(8,), verbose=True, validation_fraction=0.25).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("loss = " in line and "validation score = " in line for line in lines)


def test_a_hold_out_too_small_names_the_least_populated_class(sk):
    X, y = blobs(n=12)
    labels = np.array(["a"] * 10 + ["b", "c"])
    with pytest.raises(ValueError, match=r"least populated class in y \('b'\) has only 1 member"):
        sk.FNNClassifier(epochs=1, validation_fraction=0.01).fit(X, labels)
