"""`FNNClassifier`: fnn behind scikit-learn's estimator interface, for `Pipeline`,
`GridSearchCV` and `cross_val_score`.

    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fnn.sklearn import FNNClassifier

    search = GridSearchCV(
        make_pipeline(StandardScaler(), FNNClassifier(epochs=10)),
        {"fnnclassifier__hidden": [(64,), (128,)], "fnnclassifier__l2": [0.0, 0.3]},
    )
    search.fit(X, y)  # y: any labels, ints or strings

scikit-learn is an optional extra (`pip install 'fnn[sklearn]'`): only this module imports
it, and `import fnn` does not import this module.

The estimator is an adapter at the edge, so unlike the rest of fnn it keeps state on `self`,
as scikit-learn requires: `fit` stores the trained network as `params_` (an `fnn.MLP`) and
`predict_proba` is `fnn.predict_proba(params_, X)`. The hyper-parameters are
`fnn.TrainConfig`'s fields under the same names and defaults, with `random_state` in place of
`seed`; `fit` builds the TrainConfig and calls `fnn.train`, so
`FNNClassifier(random_state=7, **fields).fit(X, y)` trains the very network that
`fnn.train(np.random.default_rng(7), TrainConfig(seed=7, **fields), (X, codes))` does, where
codes are the labels' positions in `classes_`.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from fnn.augment import as_augmentation
from fnn.config import TrainConfig, train
from fnn.errors import TrainingDiverged
from fnn.nn import check_batch, predict_proba

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6 validates through a method instead

    def validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


DEFAULTS = TrainConfig()

# The checks of `sklearn.utils.estimator_checks.check_estimator` this estimator is known to
# fail, each mapped to the reason: pass it as `expected_failed_checks=`. Empty: it passes all.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}

# X arrives as float32 or float64 and stays so; anything else (ints, objects holding numbers)
# becomes float32, the params' dtype, in which the network computes anyway.
_X_DTYPES = (np.float32, np.float64)


class FNNClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron trained by `fnn.train`, as a scikit-learn classifier.

    Parameters (those of `fnn.TrainConfig`, same names and defaults, see its docstring):
    hidden: hidden layer widths, e.g. (128,) or (256, 128); an int n means (n,).
    conv, kernel: convolutional blocks before them, channels of each (e.g. (32, 64); () for
        none) and their square kernel size; X's rows must then be square grayscale images
        (784 columns: 28x28).
    activation: "relu", "leaky_relu", "tanh" or "sigmoid"; dropout: rate after each hidden layer.
    epochs: the most epochs; batch_size: rows per update, or "full" / None for full batch.
    optimizer: "gd", "sgd" or "adam"; lr: (peak) learning rate; momentum, nesterov: sgd's.
    l2: weight penalty (l2/(2m)) Σ||W||²; schedule: "constant", "step" or "cosine".
    patience, monitor, eval_every: early stopping on a validation split (needs
        validation_fraction), and how often it is evaluated.
    augment: distortions of every training batch, as `fnn train --augment` takes them: None,
        a text such as "shift,affine,elastic" or an `fnn.augment.Augmentation`; X's rows must
        then be square grayscale images with background 0 (pixels scaled to [0, 1], not
        standardised). predict never sees them.
    validation_fraction: None (train on every row; the final params are kept) or a fraction in
        (0, 1) of the rows, held out at random and stratified by class, on which each
        evaluation scores the network; `fit` then keeps the params of the best evaluation by
        `monitor`, and early stopping can use `patience`.
    random_state: int (the TrainConfig seed: the same int, the same network, bit for bit),
        a numpy RandomState (one int is drawn from it), or None (fresh entropy, a different
        network on every fit).

    Attributes after `fit`:
    classes_: the sorted distinct labels of y, of y's dtype; predict returns these.
    n_features_in_ (and feature_names_in_ for a DataFrame with string column names).
    params_: the trained `fnn.Network`, widths (n_features_in_, *hidden, len(classes_)).
    config_: the `fnn.TrainConfig` it trained with (seed included); history_: `fnn.fit`'s
        history DataFrame; stopped_: "completed" or "early_stop".
    """

    def __init__(
        self,
        hidden=DEFAULTS.hidden,
        conv=DEFAULTS.conv,
        kernel=DEFAULTS.kernel,
        activation=DEFAULTS.activation,
        dropout=DEFAULTS.dropout,
        epochs=DEFAULTS.epochs,
        batch_size=DEFAULTS.batch_size,
        optimizer=DEFAULTS.optimizer,
        lr=DEFAULTS.lr,
        momentum=DEFAULTS.momentum,
        nesterov=DEFAULTS.nesterov,
        l2=DEFAULTS.l2,
        schedule=DEFAULTS.schedule,
        patience=DEFAULTS.patience,
        monitor=DEFAULTS.monitor,
        eval_every=DEFAULTS.eval_every,
        augment=DEFAULTS.augment,
        validation_fraction=None,
        random_state=DEFAULTS.seed,
    ):
        # scikit-learn's contract: store the arguments untouched; `fit` validates them.
        self.hidden = hidden
        self.conv = conv
        self.kernel = kernel
        self.activation = activation
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.l2 = l2
        self.schedule = schedule
        self.patience = patience
        self.monitor = monitor
        self.eval_every = eval_every
        self.augment = augment
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X, y):
        """Train a new network on X: (m, n) numbers and y: (m,) labels of any type; returns self.

        Raises ValueError for bad input or hyper-parameters (naming them), and
        fnn.TrainingDiverged (a ValueError) when the loss stops being finite.
        """
        X, y = validate_data(self, X, y, dtype=_X_DTYPES)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"y holds 1 class ({classes[0]!r}): a classifier needs at least 2 classes to tell apart"
            )
        config = self._config(_seed(self.random_state))
        rng = np.random.default_rng(config.seed)
        train_set, dev_set = (X, codes.astype(np.int64)), None
        if self.validation_fraction is not None:
            split_rng, rng = rng.spawn(2)
            train_set, dev_set = _hold_out(split_rng, X, codes, self.validation_fraction)
        result = train(rng, config, train_set, dev_set)
        if result.stopped == "diverged":
            raise TrainingDiverged(f"FNNClassifier {result.message}; try a smaller lr")
        self.classes_ = classes
        self.params_ = result.best_params
        self.config_ = config
        self.history_ = result.history
        self.stopped_ = result.stopped
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, X: (m, n_features_in_) -> (m, len(classes_)) in the params'
        dtype, column j for classes_[j]; rows sum to 1."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=_X_DTYPES, reset=False)
        return predict_proba(self.params_, check_batch(self.params_, X)[0])

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row: X: (m, n_features_in_) -> (m,) from classes_."""
        proba = self.predict_proba(X)  # first: before fit it raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]

    def _config(self, seed: int) -> TrainConfig:
        """The TrainConfig of the current parameters; a bad value is a ValueError naming it."""
        if self.patience is not None and self.validation_fraction is None:
            raise ValueError("patience needs a validation split to monitor: set validation_fraction, e.g. 0.1")
        try:
            augment = as_augmentation(self.augment)
        except (TypeError, ValueError) as error:
            raise ValueError(f"FNNClassifier: augment: {error}") from None
        try:
            return TrainConfig(
                hidden=(self.hidden,) if isinstance(self.hidden, numbers.Integral) else self.hidden,
                conv=self.conv,
                kernel=self.kernel,
                activation=self.activation,
                dropout=self.dropout,
                epochs=self.epochs,
                batch_size=self.batch_size,
                optimizer=self.optimizer,
                lr=self.lr,
                momentum=self.momentum,
                nesterov=self.nesterov,
                l2=self.l2,
                schedule=self.schedule,
                patience=self.patience,
                monitor=self.monitor,
                eval_every=self.eval_every,
                augment=augment,
                seed=seed,
            )
        except TypeError as error:  # e.g. hidden=None: tuple() of it fails before any validator
            raise ValueError(f"FNNClassifier: hidden must be a tuple of positive ints, got {self.hidden!r} ({error})") from None


def _seed(random_state) -> int:
    """The int seed of scikit-learn's random_state convention (int, RandomState or None)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().entropy)  # fresh entropy: a new network each fit
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _hold_out(rng: np.random.Generator, X: np.ndarray, codes: np.ndarray, fraction) -> tuple:
    """((X_train, y_train), (X_dev, y_dev)): `fraction` of each class's rows held out at random
    (at least one row in all, at least one row of each class left to train on)."""
    if not (isinstance(fraction, numbers.Real) and 0 < fraction < 1):
        raise ValueError(f"validation_fraction must be None or a number in (0, 1), got {fraction!r}")
    held = np.zeros(len(codes), dtype=bool)
    for label in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == label))
        held[rows[: min(int(round(fraction * len(rows))), len(rows) - 1)]] = True
    if not held.any():
        raise ValueError(
            f"validation_fraction={fraction} of {len(codes)} rows holds out no row; pass a larger fraction"
        )
    y = codes.astype(np.int64)
    return (X[~held], y[~held]), (X[held], y[held])
