"""scikit-learn's own MLPClassifier tests, ported to fnn.sklearn.FNNClassifier, and
check_estimator under each setting issue 24 names.

The port follows `sklearn/neural_network/tests/test_mlp.py` of scikit-learn 1.9.1 test by test,
same data, same assertions, in fnn's parameter names: hidden_layer_sizes -> hidden,
alpha -> l2 (the same l2/(2m)·ΣW²), solver -> optimizer, learning_rate_init -> lr,
max_iter -> epochs, nesterovs_momentum -> nesterov, activation "logistic" -> "sigmoid",
early_stopping=True -> validation_fraction=0.1, patience=10 (its validation_fraction and
n_iter_no_change defaults). What a test leaves unsaid takes MLPClassifier's default, not
fnn's (`mlp` below: adam at 1e-3, 200 epochs, batches of 200, l2=1e-4, a constant rate), so
each test trains the network its original trains. fnn's binary head is a 2-way softmax where
MLPClassifier has one logistic unit, so coefs_[-1] has 2 columns for 2 classes.

Ported, in the original's order (adapted: what changed and why):
    test_alpha
    test_fit: adapted, the worked example continued through fnn's 2-way softmax: output column
        1 holds MLPClassifier's logistic unit and column 0 starts at zero, so that
        softmax = sigmoid and every number of the original still holds; the weights are set
        in params_ between two partial_fit calls (fnn has no private _coef_grads to pre-set)
    test_gradient: adapted, the analytic gradient is `fnn.nn.value_and_grads` of the fitted
        params_ (MLPClassifier's is its private _loss_grad_lbfgs); fnn's activations
    test_lbfgs_classification: adapted to adam (no lbfgs), same data, epochs and thresholds
    test_multilabel_classification: its lbfgs fit adapted to adam at lr=0.01; its third part
        (early stopping on a multilabel y) is test_multilabel_classification_early_stopping
    test_partial_fit_classes_error
    test_partial_fit_classification: schedule "constant" as MLPClassifier's (fnn's partial_fit
        is one epoch at the constant rate, so fit must be too for the two to match)
    test_partial_fit_unseen_classes
    test_partial_fit_errors: its first half (its second: lbfgs has no partial_fit; fnn has
        no lbfgs)
    test_nonfinite_params: adapted from MLPRegressor to the classifier, and to fnn's contract
        (a ConvergenceWarning and the last finite params where MLPRegressor raises ValueError)
    test_predict_proba_binary, test_predict_proba_multiclass
    test_predict_proba_multilabel: adapted to adam at lr=0.01 (no lbfgs)
    test_shuffle: adapted, its first half (the same random_state, the same coefs_) on a
        classifier; fnn has no shuffle parameter (it always shuffles)
    test_sparse_matrices: adapted to adam (no lbfgs)
    test_verbose_sgd: "Iteration" is MLPClassifier's wording; asserted: one line per epoch
        (fit's 2, partial_fit's 1), each with its loss
    test_early_stopping[MLPClassifier]: the fit without early stopping runs 20 epochs, not up
        to 3000 (no tol: fnn would run all 3000); tol's margin becomes fnn's patience rule
    test_warm_start: adapted to adam for 20 epochs (no lbfgs); its loop over y's of other
        classes is test_warm_start_other_classes, one case each
    test_warm_start_full_iteration[MLPClassifier]
    test_n_iter_no_change_inf: patience=np.inf on a validation split (fnn's patience watches
        a validation split only); 100 epochs, not 3000; the private _no_improvement_count
        is not asserted
    test_early_stopping_stratified: the message's wording is fnn's ("the least populated class
        in y (1) has only 1 member"); MLPClassifier's ("classes in y have only 1 member ...
        ['True']") names the class as its label binarizer's bool
    test_mlp_early_stopping_string_labels
    test_mlp_classifier_dtypes_casting
    test_mlp_param_dtypes[MLPClassifier-*]: also asserts predict_proba's dtype
    test_mlp_loading_from_joblib_partial_fit: adapted from MLPRegressor to the classifier
        (a pickled, reloaded classifier learns flipped labels by partial_fit)
    test_preserve_feature_names[MLPClassifier]
    test_mlp_warm_start_with_early_stopping[MLPClassifier]
    test_mlp_warm_start_no_convergence[MLPClassifier-sgd/adam]: without its
        pytest.warns(ConvergenceWarning) (fnn has no tol, so no "has not converged yet"
        warning at the last epoch; it warns only on divergence)
    test_mlp_partial_fit_after_fit[MLPClassifier]
    test_mlp_diverging_loss: adapted from MLPRegressor with the identity activation to the
        classifier with relu and lr=100; a classifier's validation score is an accuracy, finite
        even for NaN logits, so "the last score is NaN" becomes "every score is a float"
    test_mlp_sample_weight_with_early_stopping: adapted from MLPRegressor to the classifier

Excluded:
    test_lbfgs_regression: MLPRegressor (fnn has no regressor) and lbfgs
    test_lbfgs_classification_maxfun, test_lbfgs_regression_maxfun: max_fun is lbfgs's
    test_learning_rate_warmstart: learning_rate="invscaling" does not exist in fnn, and the
        "constant" half reads the private _optimizer.learning_rate
    test_multioutput_regression, test_partial_fit_regression, test_mlp_regressor_dtypes_casting,
        test_mlp_vs_poisson_glm_equivalent (also poisson loss, identity, lbfgs),
        test_minimum_input_sample_size ("The validation set is too small" is the regressor's;
        the classifier's case is test_early_stopping_stratified), and the MLPRegressor
        parametrisations of the tests above: fnn has no regressor
    test_partial_fit_errors, second half: lbfgs
    test_shuffle, second half: fnn has no shuffle=False
    test_tolerance: fnn has no tol
    test_adaptive_learning_rate: no learning_rate="adaptive", no tol
    test_n_iter_no_change: it stops on a plateau of the training loss within tol; fnn has no
        tol, and its patience watches a validation split
    test_mlp_warm_start_no_convergence[*-lbfgs]: lbfgs
    the identity activation in every test that loops over activations: fnn has none

Then check_estimator for each setting of issue 24's targets, expecting to fail only the checks
`fnn.sklearn.expected_failed_checks` names; the CNN setting runs behind a transformer that
zero-pads each row to a square image (see `cnn_pipeline`).
"""

from __future__ import annotations

import re
import warnings

import attrs
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")  # the `test` and `sklearn` extras; joblib comes with it

import joblib  # noqa: E402
import scipy.sparse  # noqa: E402
from sklearn.datasets import load_digits, load_iris, make_classification, make_multilabel_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, LabelBinarizer, MinMaxScaler  # noqa: E402
from sklearn.utils import estimator_checks  # noqa: E402
from sklearn.utils.fixes import CSR_CONTAINERS  # noqa: E402

from fnn.gradcheck import numeric_grads  # noqa: E402
from fnn.layers import Dense  # noqa: E402
import fnn.sklearn  # noqa: E402
from fnn.nn import loss, value_and_grads  # noqa: E402
from fnn.sklearn import FNNClassifier  # noqa: E402

# scikit-learn's own tests fit dozens of networks: the module is slow as a whole, and a fast run
# (`-m "not slow"`) does not even import it (tests/conftest.py, SLOW_MODULES)
pytestmark = pytest.mark.slow
from fnn.tree import tree_leaves  # noqa: E402

ACTIVATION_TYPES = ["sigmoid", "tanh", "relu", "leaky_relu"]  # MLPClassifier's less "identity", plus fnn's leaky_relu

X_digits, y_digits = load_digits(n_class=3, return_X_y=True)
X_digits_multi = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_multi = y_digits[:200]

X_digits, y_digits = load_digits(n_class=2, return_X_y=True)
X_digits_binary = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_binary = y_digits[:200]

classification_datasets = [(X_digits_multi, y_digits_multi), (X_digits_binary, y_digits_binary)]

X_iris, y_iris = load_iris(return_X_y=True)

# MLPClassifier's defaults in fnn's names: what a ported test leaves unsaid
MLP_DEFAULTS = dict(
    hidden=(100,), optimizer="adam", lr=1e-3, epochs=200, batch_size=200, l2=1e-4,
    schedule="constant", momentum=0.9, nesterov=True, random_state=None,
)
# MLPClassifier(early_stopping=True): validation_fraction=0.1, n_iter_no_change=10
EARLY_STOPPING = dict(validation_fraction=0.1, patience=10)




def mlp(**params) -> FNNClassifier:
    """FNNClassifier(**params), MLPClassifier's defaults for the rest (MLP_DEFAULTS)."""
    return FNNClassifier(**{**MLP_DEFAULTS, **params})


def test_alpha():
    # Test that larger alpha yields weights closer to zero
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]

    alpha_vectors = []
    alpha_values = np.arange(2)
    absolute_sum = lambda x: np.sum(np.abs(x))  # noqa: E731

    for alpha in alpha_values:
        model = mlp(hidden=10, l2=alpha, random_state=1).fit(X, y)
        alpha_vectors.append(np.array([absolute_sum(model.coefs_[0]), absolute_sum(model.coefs_[1])]))

    for i in range(len(alpha_values) - 1):
        assert (alpha_vectors[i] > alpha_vectors[i + 1]).all()


def test_fit():
    # Test that the algorithm solution is equal to a worked out example: MLPClassifier's, one
    # sgd step on one row. Its network has one logistic output o1; fnn's has a 2-way softmax,
    # so column 1 is MLPClassifier's output unit and column 0 starts at zero: then
    # softmax(o)[1] = sigmoid(o1 - 0), the delta of column 1 is MLPClassifier's d21 and the
    # hidden deltas (through W2[:, 0] = 0) are its d11, d12, so every number below is the
    # original's; column 0 takes the opposite delta, -0.765.
    X = np.array([[0.6, 0.8, 0.7]])
    y = np.array([0])
    model = FNNClassifier(
        optimizer="sgd", lr=0.1, l2=0.1, activation="sigmoid", random_state=1, hidden=2,
        momentum=0, schedule="constant", batch_size=1,
    )
    model.partial_fit(X, y, classes=[0, 1])  # builds the network and its optimizer state
    # set weights
    weights = iter([
        Dense(W=np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), b=np.array([0.1, 0.1])),
        Dense(W=np.array([[0.0, 0.1], [0.0, 0.2]]), b=np.array([0.0, 1.0])),
    ])
    layers = [next(weights) if isinstance(layer, Dense) else layer for layer in model.params_.layers]
    model.params_ = attrs.evolve(model.params_, layers=layers)

    model.partial_fit(X, y)
    # Manually worked out example (MLPClassifier's)
    # h1 = g(X1 * W_i1 + b11) = g(0.6 * 0.1 + 0.8 * 0.3 + 0.7 * 0.5 + 0.1)
    #       =  0.679178699175393
    # h2 = g(X2 * W_i2 + b12) = g(0.6 * 0.2 + 0.8 * 0.1 + 0.7 * 0 + 0.1)
    #         = 0.574442516811659
    # o1 = g(h * W2 + b21) = g(0.679 * 0.1 + 0.574 * 0.2 + 1)
    #       = 0.7654329236196236
    # d21 = -(0 - 0.765) = 0.765
    # d11 = (1 - 0.679) * 0.679 * 0.765 * 0.1 = 0.01667
    # d12 = (1 - 0.574) * 0.574 * 0.765 * 0.2 = 0.0374
    # W1grad11 = X1 * d11 + alpha * W11 = 0.6 * 0.01667 + 0.1 * 0.1 = 0.0200
    # W1grad11 = X1 * d12 + alpha * W12 = 0.6 * 0.0374 + 0.1 * 0.2 = 0.04244
    # W1grad21 = X2 * d11 + alpha * W13 = 0.8 * 0.01667 + 0.1 * 0.3 = 0.043336
    # W1grad22 = X2 * d12 + alpha * W14 = 0.8 * 0.0374 + 0.1 * 0.1 = 0.03992
    # W1grad31 = X3 * d11 + alpha * W15 = 0.6 * 0.01667 + 0.1 * 0.5 = 0.060002
    # W1grad32 = X3 * d12 + alpha * W16 = 0.6 * 0.0374 + 0.1 * 0 = 0.02244
    # W2grad1 = h1 * d21 + alpha * W21 = 0.679 * 0.765 + 0.1 * 0.1 = 0.5294
    # W2grad2 = h2 * d21 + alpha * W22 = 0.574 * 0.765 + 0.1 * 0.2 = 0.45911
    # b1grad1 = d11 = 0.01667
    # b1grad2 = d12 = 0.0374
    # b2grad = d21 = 0.765
    # W1 = W1 - eta * [W1grad11, .., W1grad32] = [[0.1, 0.2], [0.3, 0.1],
    #          [0.5, 0]] - 0.1 * [[0.0200, 0.04244], [0.043336, 0.03992],
    #          [0.060002, 0.02244]] = [[0.098, 0.195756], [0.2956664,
    #          0.096008], [0.4939998, -0.002244]]
    # W2 = W2 - eta * [W2grad1, W2grad2] = [[0.1], [0.2]] - 0.1 *
    #        [[0.5294], [0.45911]] = [[0.04706], [0.154089]]
    # b1 = b1 - eta * [b1grad1, b1grad2] = 0.1 - 0.1 * [0.01667, 0.0374]
    #         = [0.098333, 0.09626]
    # b2 = b2 - eta * b2grad = 1.0 - 0.1 * 0.765 = 0.9235
    # fnn's column 0 (delta -0.765, weights 0, so no l2 term):
    # W2[:, 0] = 0 - 0.1 * (-0.765) * [0.679, 0.574] = [0.05199, 0.04397]
    # b2[0] = 0 - 0.1 * (-0.765) = 0.0765
    np.testing.assert_almost_equal(
        model.coefs_[0],
        np.array([[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]]),
        decimal=3,
    )
    np.testing.assert_almost_equal(model.coefs_[1][:, 1:], np.array([[0.04706], [0.154089]]), decimal=3)
    np.testing.assert_almost_equal(model.intercepts_[0], np.array([0.098333, 0.09626]), decimal=3)
    np.testing.assert_almost_equal(model.intercepts_[1][1], 0.9235, decimal=3)
    np.testing.assert_almost_equal(model.coefs_[1][:, 0], np.array([0.05199, 0.04397]), decimal=3)
    np.testing.assert_almost_equal(model.intercepts_[1][0], 0.0765, decimal=3)
    # Testing output
    #  h1 = g(X1 * W_i1 + b11) = g(0.6 * 0.098 + 0.8 * 0.2956664 +
    #               0.7 * 0.4939998 + 0.098333) = 0.677
    #  h2 = g(X2 * W_i2 + b12) = g(0.6 * 0.195756 + 0.8 * 0.096008 +
    #            0.7 * -0.002244 + 0.09626) = 0.572
    #  o1 = h * W2 + b21 = 0.677 * 0.04706 +
    #             0.572 * 0.154089 + 0.9235 = 1.043
    #  MLPClassifier's prob = sigmoid(o1) = 0.739; fnn's column 0 has grown to
    #  o0 = 0.677 * 0.05199 + 0.572 * 0.04397 + 0.0765 = 0.137
    #  prob = softmax(o)[1] = sigmoid(o1 - o0) = sigmoid(0.906) = 0.712
    np.testing.assert_almost_equal(model.predict_proba(X)[0, 1], 0.712, decimal=3)


def test_gradient():
    # Test gradient.

    # This makes sure that the activation functions and their derivatives
    # are correct. The numerical and analytical computation of the gradient
    # should be close.
    for n_labels in [2, 3]:
        n_samples = 5
        n_features = 10
        random_state = np.random.RandomState(seed=42)
        X = random_state.rand(n_samples, n_features)
        y = 1 + np.mod(np.arange(n_samples) + 1, n_labels)
        Y = LabelBinarizer().fit_transform(y)
        codes = Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0]

        for activation in ACTIVATION_TYPES:
            model = mlp(activation=activation, hidden=10, optimizer="sgd", l2=1e-5, lr=0.2, epochs=1, random_state=1)
            model.fit(X, y)
            params = model.params_
            assert params.layers[0].W.dtype == np.float64  # float64 X: a float64 network

            # analytically compute the gradients
            value, grad = value_and_grads(params, X, codes, l2=1e-5)
            # numerically compute the gradients
            numgrad = numeric_grads(lambda p: loss(p, X, codes, l2=1e-5), params, eps=1e-5)
            for analytic, numeric in zip(tree_leaves(grad), tree_leaves(numgrad), strict=True):
                np.testing.assert_almost_equal(numeric, analytic)


@pytest.mark.parametrize("X,y", classification_datasets)
def test_lbfgs_classification(X, y):
    # Test adam (lbfgs in the original) on classification.
    # It should achieve a score higher than 0.95 for the binary and multi-class
    # versions of the digits dataset.
    X_train = X[:150]
    y_train = y[:150]
    X_test = X[150:]
    expected_shape_dtype = (X_test.shape[0], y_train.dtype.kind)

    for activation in ACTIVATION_TYPES:
        model = mlp(hidden=50, epochs=150, random_state=1, activation=activation)
        model.fit(X_train, y_train)
        y_predict = model.predict(X_test)
        assert model.score(X_train, y_train) > 0.95
        assert (y_predict.shape[0], y_predict.dtype.kind) == expected_shape_dtype


def test_multilabel_classification():
    # Test that multi-label classification works as expected.
    # test fit method
    X, y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    model = mlp(hidden=50, l2=1e-5, epochs=150, random_state=0, activation="sigmoid", lr=0.01)
    model.fit(X, y)
    assert model.out_activation_ == "logistic"
    assert model.score(X, y) > 0.97

    # test partial fit method
    model = mlp(optimizer="sgd", hidden=50, epochs=150, random_state=0, activation="sigmoid", l2=1e-5, lr=0.2)
    for i in range(100):
        model.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    assert model.score(X, y) > 0.9


def test_multilabel_classification_early_stopping():
    # (the third part of the original test_multilabel_classification)
    # Make sure early stopping still work now that splitting is stratified by
    # default (it is disabled for multilabel classification)
    X, y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    model = mlp(**EARLY_STOPPING)
    assert model.fit(X, y).predict(X).shape == y.shape


def test_partial_fit_classes_error():
    # Tests that passing different classes to partial_fit raises an error
    X = [[3, 2]]
    y = [0]
    clf = mlp(optimizer="sgd")
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError):
        clf.partial_fit(X, y, classes=[1, 2])


def test_partial_fit_classification():
    # Test partial_fit on classification.
    # `partial_fit` should yield the same results as 'fit' for binary and
    # multi-class classification.
    for X, y in classification_datasets:
        model = mlp(optimizer="sgd", epochs=100, random_state=1, l2=1e-5, lr=0.2)
        model.fit(X, y)
        pred1 = model.predict(X)
        model = mlp(optimizer="sgd", random_state=1, l2=1e-5, lr=0.2)
        for i in range(100):
            model.partial_fit(X, y, classes=np.unique(y))
        pred2 = model.predict(X)
        np.testing.assert_array_equal(pred1, pred2)
        assert model.score(X, y) > 0.95


def test_partial_fit_unseen_classes():
    # Non regression test for bug 6994
    # Tests for labeling errors in partial fit

    clf = mlp(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


def test_partial_fit_errors():
    # Test partial_fit error handling.
    X = [[3, 2], [1, 6]]
    y = [1, 0]

    # no classes passed
    with pytest.raises(ValueError):
        mlp(optimizer="sgd").partial_fit(X, y, classes=[2])


def test_nonfinite_params():
    # Check that the classifier handles non-finite parameter values: MLPRegressor raises
    # ValueError; FNNClassifier warns and keeps the last finite parameters
    rng = np.random.RandomState(0)
    n_samples = 10
    fmax = np.finfo(np.float64).max
    X = fmax * rng.uniform(size=(n_samples, 2))
    y = rng.randint(0, 2, size=n_samples)

    clf = mlp()
    with warnings.catch_warnings():
        # RuntimeWarning: overflow encountered in matmul
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(ConvergenceWarning):
            clf.fit(X, y)
    assert clf.stopped_ == "diverged"
    assert all(np.isfinite(a).all() for a in clf.coefs_ + clf.intercepts_)


def test_predict_proba_binary():
    # Test that predict_proba works as expected for binary class.
    X = X_digits_binary[:50]
    y = y_digits_binary[:50]

    clf = mlp(hidden=5, activation="sigmoid", random_state=1)
    clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)

    (n_samples, n_classes) = y.shape[0], 2

    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert y_proba.shape == (n_samples, n_classes)
    np.testing.assert_array_equal(proba_max, proba_log_max)
    # fnn computes log P directly (log-softmax, log σ): where P is within 1e-15 of 1, np.log of
    # the rounded probability is the one off in its last digits (seen with numpy's lowest version)
    np.testing.assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-7, atol=1e-12)

    assert roc_auc_score(y, y_proba[:, 1]) == 1.0


def test_predict_proba_multiclass():
    # Test that predict_proba works as expected for multi class.
    X = X_digits_multi[:10]
    y = y_digits_multi[:10]

    clf = mlp(hidden=5)
    clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)

    (n_samples, n_classes) = y.shape[0], np.unique(y).size

    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert y_proba.shape == (n_samples, n_classes)
    np.testing.assert_array_equal(proba_max, proba_log_max)
    # fnn computes log P directly (log-softmax, log σ): where P is within 1e-15 of 1, np.log of
    # the rounded probability is the one off in its last digits (seen with numpy's lowest version)
    np.testing.assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-7, atol=1e-12)


def test_predict_proba_multilabel():
    # Test that predict_proba works as expected for multilabel.
    # Multilabel should not use softmax which makes probabilities sum to 1
    X, Y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    n_samples, n_classes = Y.shape

    clf = mlp(hidden=30, random_state=0, lr=0.01)
    clf.fit(X, Y)
    y_proba = clf.predict_proba(X)

    assert y_proba.shape == (n_samples, n_classes)
    np.testing.assert_array_equal(y_proba > 0.5, Y)

    y_log_proba = clf.predict_log_proba(X)
    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert (y_proba.sum(1) - 1).dot(y_proba.sum(1) - 1) > 1e-10
    np.testing.assert_array_equal(proba_max, proba_log_max)
    # fnn computes log P directly (log-softmax, log σ): where P is within 1e-15 of 1, np.log of
    # the rounded probability is the one off in its last digits (seen with numpy's lowest version)
    np.testing.assert_allclose(y_log_proba, np.log(y_proba), rtol=1e-7, atol=1e-12)


def test_shuffle():
    # The coefficients are identical for the same random_state (the original's first half,
    # on MLPRegressor; fnn has no shuffle=False for its second)
    X, y = make_classification(n_samples=50, n_features=5, random_state=0)
    mlp1 = mlp(hidden=1, epochs=1, batch_size=1, random_state=0).fit(X, y)
    mlp2 = mlp(hidden=1, epochs=1, batch_size=1, random_state=0).fit(X, y)
    assert np.array_equal(mlp1.coefs_[0], mlp2.coefs_[0])
    # and differ for another one (or the assertion above could not fail)
    mlp3 = mlp(hidden=1, epochs=1, batch_size=1, random_state=1).fit(X, y)
    assert not np.array_equal(mlp1.coefs_[0], mlp3.coefs_[0])


@pytest.mark.parametrize("csr_container", CSR_CONTAINERS)
def test_sparse_matrices(csr_container):
    # Test that sparse and dense input matrices output the same results.
    X = X_digits_binary[:50]
    y = y_digits_binary[:50]
    X_sparse = csr_container(X)
    model = mlp(hidden=15, random_state=1)
    model.fit(X, y)
    pred1 = model.predict(X)
    model.fit(X_sparse, y)
    pred2 = model.predict(X_sparse)
    np.testing.assert_almost_equal(pred1, pred2)
    pred1 = model.predict(X)
    pred2 = model.predict(X_sparse)
    np.testing.assert_array_equal(pred1, pred2)


def test_verbose_sgd(capsys):
    # Test verbose.
    X = [[3, 2], [1, 6]]
    y = [1, 0]
    clf = mlp(optimizer="sgd", epochs=2, verbose=10, hidden=2)
    clf.fit(X, y)
    clf.partial_fit(X, y)

    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and all("loss" in line for line in lines)  # MLPClassifier's: "Iteration"


def test_early_stopping():
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]
    patience = EARLY_STOPPING["patience"]
    mlp_estimator = mlp(epochs=3000, optimizer="sgd", **EARLY_STOPPING)
    mlp_estimator.fit(X, y)
    assert mlp_estimator.epochs > mlp_estimator.n_iter_

    assert mlp_estimator.best_loss_ is None
    assert isinstance(mlp_estimator.validation_scores_, list)

    valid_scores = mlp_estimator.validation_scores_
    best_valid_score = mlp_estimator.best_validation_score_
    assert max(valid_scores) == best_valid_score
    # MLPClassifier: best_valid_score + tol > valid_scores[-2], [-1]; fnn has no tol: the last
    # `patience` scores did not improve on the best
    assert len(valid_scores) - 1 - valid_scores.index(best_valid_score) >= patience

    # check that the attributes `validation_scores_` and `best_validation_score_`
    # are set to None when `early_stopping=False`
    mlp_estimator = mlp(epochs=20, optimizer="sgd")
    mlp_estimator.fit(X, y)
    assert mlp_estimator.validation_scores_ is None
    assert mlp_estimator.best_validation_score_ is None
    assert mlp_estimator.best_loss_ is not None


def test_warm_start():
    X = X_iris
    y = y_iris

    y_3classes = np.array([0] * 40 + [1] * 40 + [2] * 70)

    # No error raised
    clf = mlp(hidden=2, epochs=20, warm_start=True, random_state=42).fit(X, y)
    clf.fit(X, y)
    clf.fit(X, y_3classes)


Y_OTHER_CLASSES = {
    "y_2classes": np.array([0] * 75 + [1] * 75),
    "y_3classes_alt": np.array([0] * 50 + [1] * 50 + [3] * 50),
    "y_4classes": np.array([0] * 37 + [1] * 37 + [2] * 38 + [3] * 38),
    "y_5classes": np.array([0] * 30 + [1] * 30 + [2] * 30 + [3] * 30 + [4] * 30),
}


@pytest.mark.parametrize("name", list(Y_OTHER_CLASSES))
def test_warm_start_other_classes(name):
    # (the loop of the original test_warm_start, one y_i per case)
    X, y, y_i = X_iris, y_iris, Y_OTHER_CLASSES[name]
    clf = mlp(hidden=2, epochs=20, warm_start=True, random_state=42).fit(X, y)
    message = (
        "warm_start can only be used where `y` has the same "
        "classes as in the previous call to fit."
        " Previously got [0 1 2], `y` has %s" % np.unique(y_i)
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        clf.fit(X, y_i)


def test_warm_start_full_iteration():
    # Non-regression test for:
    # https://github.com/scikit-learn/scikit-learn/issues/16812
    # Check that the MLP estimator accomplish `max_iter` with a
    # warm started estimator.
    X, y = X_iris, y_iris
    max_iter = 3
    clf = mlp(hidden=2, optimizer="sgd", warm_start=True, epochs=max_iter)
    clf.fit(X, y)
    assert max_iter == clf.n_iter_
    clf.fit(X, y)
    assert max_iter == clf.n_iter_


def test_n_iter_no_change_inf():
    # test n_iter_no_change using binary data set
    # the fitting process should go to max_iter iterations
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]

    # fit
    n_iter_no_change = np.inf
    max_iter = 100
    clf = mlp(epochs=max_iter, optimizer="sgd", patience=n_iter_no_change, validation_fraction=0.1)
    clf.fit(X, y)

    # validate n_iter_no_change doesn't cause early stopping
    assert clf.n_iter_ == max_iter


def test_early_stopping_stratified():
    # Make sure data splitting for early stopping is stratified
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]

    model = mlp(**EARLY_STOPPING)
    with pytest.raises(ValueError, match=r"least populated class in y \(1\) has only 1 member"):
        model.fit(X, y)


def test_mlp_early_stopping_string_labels():
    """Check that labels can be strings when `early_stopping=True`.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/33760
    """
    X, y = make_classification(n_samples=200, n_features=10, n_classes=3, n_informative=5, random_state=42)
    labels = np.array(["class_a", "class_b", "class_c"], dtype=object)
    y = labels[y]

    model = mlp(epochs=50, random_state=42, **EARLY_STOPPING)
    model.fit(X, y)

    assert model.validation_scores_ is not None
    assert len(model.validation_scores_) == model.n_iter_
    assert np.isfinite(model.validation_scores_).all()


def test_mlp_classifier_dtypes_casting():
    # Compare predictions for different dtypes
    mlp_64 = mlp(l2=1e-5, hidden=(5, 3), random_state=1, epochs=100)
    mlp_64.fit(X_digits[:300], y_digits[:300])
    pred_64 = mlp_64.predict(X_digits[300:])
    proba_64 = mlp_64.predict_proba(X_digits[300:])

    mlp_32 = mlp(l2=1e-5, hidden=(5, 3), random_state=1, epochs=100)
    mlp_32.fit(X_digits[:300].astype(np.float32), y_digits[:300])
    pred_32 = mlp_32.predict(X_digits[300:].astype(np.float32))
    proba_32 = mlp_32.predict_proba(X_digits[300:].astype(np.float32))

    np.testing.assert_array_equal(pred_64, pred_32)
    np.testing.assert_allclose(proba_64, proba_32, rtol=1e-02)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_param_dtypes(dtype):
    # Checks if input dtype is used for network parameters
    # and predictions
    X, y = X_digits.astype(dtype), y_digits
    model = mlp(l2=1e-5, hidden=(5, 3), random_state=1, epochs=50)
    model.fit(X[:300], y[:300])
    proba = model.predict_proba(X[300:])

    assert all([intercept.dtype == dtype for intercept in model.intercepts_])

    assert all([coef.dtype == dtype for coef in model.coefs_])

    assert proba.dtype == dtype


def test_mlp_loading_from_joblib_partial_fit(tmp_path):
    """Loading from MLP and partial fitting updates weights. Non-regression
    test for #19626 (there on MLPRegressor; here a classifier unlearns its labels)."""
    pre_trained_estimator = mlp(hidden=(42,), random_state=42, lr=0.01, epochs=200)
    features, target = [[2], [-2]], [0, 1]

    # Fit on x=2, y=0 and x=-2, y=1
    pre_trained_estimator.fit(features, target)
    np.testing.assert_array_equal(pre_trained_estimator.predict(features), target)

    # dump and load model
    pickled_file = tmp_path / "mlp.pkl"
    joblib.dump(pre_trained_estimator, pickled_file)
    load_estimator = joblib.load(pickled_file)

    # Train for a more epochs on the flipped labels
    fine_tune_features, fine_tune_target = features, [1, 0]

    for _ in range(200):
        load_estimator.partial_fit(fine_tune_features, fine_tune_target)

    # finetuned model learned the new target
    predicted_value = load_estimator.predict(fine_tune_features)
    np.testing.assert_array_equal(predicted_value, fine_tune_target)


def test_preserve_feature_names():
    """Check that feature names are preserved when early stopping is enabled.

    Feature names are required for consistency checks during scoring.

    Non-regression test for gh-24846
    """
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)

    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.full(10, 1), name="colname_y")

    model = mlp(validation_fraction=0.2, patience=10)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(X, y)
        assert list(model.feature_names_in_) == ["colname_a", "colname_b"]
        assert (model.predict(X) == 1).all()


def test_mlp_warm_start_with_early_stopping():
    """Check that early stopping works with warm start."""
    model = mlp(epochs=10, random_state=0, warm_start=True, **EARLY_STOPPING)
    model.fit(X_iris, y_iris)
    n_validation_scores = len(model.validation_scores_)
    model.set_params(epochs=20)
    model.fit(X_iris, y_iris)
    assert len(model.validation_scores_) > n_validation_scores


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mlp_warm_start_no_convergence(solver):
    """Check that we stop the number of iteration at `max_iter` when warm starting.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/24764
    """
    model = mlp(optimizer=solver, warm_start=True, epochs=10, random_state=0)

    model.fit(X_iris, y_iris)
    assert model.n_iter_ == 10

    model.set_params(epochs=20)
    model.fit(X_iris, y_iris)
    assert model.n_iter_ == 20


def test_mlp_partial_fit_after_fit():
    """Check partial fit does not fail after fit when early_stopping=True.

    Non-regression test for gh-25693.
    """
    model = mlp(random_state=0, **EARLY_STOPPING).fit(X_iris, y_iris)

    # fnn: partial_fit is not available with a validation split (scikit-learn's available_if),
    # where MLPClassifier raises ValueError("partial_fit does not support early_stopping=True")
    assert not hasattr(model, "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        model.partial_fit(X_iris, y_iris)
    assert "partial_fit does not support a validation split" in str(error.value.__cause__)


def test_mlp_diverging_loss():
    """Test that a diverging model does not raise errors when early stopping is enabled.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/29504
    """
    model = mlp(
        hidden=100, activation="relu", optimizer="sgd", l2=0.0001, schedule="constant", lr=1e30,
        epochs=20, validation_fraction=0.1, patience=10, random_state=0,
    )
    with warnings.catch_warnings():
        # RuntimeWarning: overflow encountered in matmul
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(ConvergenceWarning):
            model.fit(X_iris, y_iris)

    assert model.stopped_ == "diverged"
    assert all(isinstance(score, float) for score in model.validation_scores_)
    assert all(np.isfinite(a).all() for a in model.coefs_ + model.intercepts_)


def test_mlp_sample_weight_with_early_stopping():
    # Test code path for inner validation set splitting.
    X, y = make_classification(n_samples=100, n_features=2, n_informative=2, n_redundant=0, random_state=42)
    sw = np.ones_like(y, dtype=float)
    params = dict(hidden=10, optimizer="adam", lr=0.01, batch_size=10, random_state=42, **EARLY_STOPPING)
    m1 = mlp(**params)
    m1.fit(X, y, sample_weight=sw)

    m2 = mlp(**params).fit(X, y, sample_weight=None)
    np.testing.assert_allclose(m1.predict_proba(X), m2.predict_proba(X))


# ---------------------------------------------------------------- check_estimator


def pad_to_square(X):
    """X: (m, n) -> (m, s²), zero columns after X's, s = max(4, ceil(√n)): a square image a CNN
    takes (4x4 at least: a 3x3 convolution and a 2x2 pooling leave 1x1). Sparse stays sparse."""
    n = X.shape[1]
    side = max(4, int(np.ceil(np.sqrt(n))))
    if scipy.sparse.issparse(X):
        return scipy.sparse.hstack([X, scipy.sparse.csr_matrix((X.shape[0], side * side - n), dtype=X.dtype)], format="csr")
    return np.hstack([X, np.zeros((X.shape[0], side * side - n), dtype=X.dtype)])


def cnn_pipeline():
    """FNNClassifier(conv=(4,), hidden=(16,)) behind pad_to_square: check_estimator's data have
    2 to 20-odd columns, and a CNN takes square images only (a ValueError otherwise, as
    tests/test_sklearn.py asserts)."""
    # random_state fixed here: check_estimator's set_random_state sets a Pipeline's own
    # random_state only, which it has none of
    return make_pipeline(
        FunctionTransformer(pad_to_square, accept_sparse=True, validate=True),
        FNNClassifier(conv=(4,), hidden=(16,), random_state=0),
    )


# scikit-learn's own expected failures of a Pipeline (PER_ESTIMATOR_XFAIL_CHECKS in
# sklearn/utils/_test_common/instance_generator.py): fitting mutates its `steps`
PIPELINE_XFAILS = {
    "check_dont_overwrite_parameters": "Pipeline changes the `steps` parameter (scikit-learn's own xfail)",
    "check_estimators_overwrite_params": "Pipeline changes the `steps` parameter (scikit-learn's own xfail)",
}

SAMPLE_WEIGHT_CHECKS = {"check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data"}

SETTINGS = {
    "default": {},
    "hidden=(32, 16)": dict(hidden=(32, 16)),
    "adam": dict(optimizer="adam"),
    "hidden=(32, 16), adam": dict(hidden=(32, 16), optimizer="adam"),
    "leaky_relu": dict(activation="leaky_relu"),
    "sigmoid": dict(activation="sigmoid"),
    "dropout=0.5": dict(dropout=0.5),
    "tanh, dropout=0.2": dict(activation="tanh", dropout=0.2),
    "validation_fraction=0.2, patience=3": dict(validation_fraction=0.2, patience=3),
    "full batch gd": dict(batch_size="full", optimizer="gd"),
    "cnn": "cnn",
}


# 1 to 4 s each on an idle machine, about 25 s in all
@pytest.mark.parametrize("setting", list(SETTINGS), ids=list(SETTINGS))
def test_check_estimator(setting):
    """Every check of check_estimator passes, but those fnn.sklearn.expected_failed_checks names."""
    if SETTINGS[setting] == "cnn":
        estimator = cnn_pipeline()
        expected = {**fnn.sklearn.expected_failed_checks(estimator[-1]), **PIPELINE_XFAILS}
    else:
        estimator = FNNClassifier(**SETTINGS[setting])
        expected = fnn.sklearn.expected_failed_checks(estimator)
        random_per_row = "dropout" in SETTINGS[setting] or "validation_fraction" in SETTINGS[setting]
        assert set(expected) == (SAMPLE_WEIGHT_CHECKS if random_per_row else set())  # none but these two
    estimator_checks.check_estimator(estimator, expected_failed_checks=expected or None, on_skip=None)
