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
`predict_proba` is `fnn.predict_proba(params_, X)` (σ for a multilabel y). The
hyper-parameters are `fnn.TrainConfig`'s fields under the same names and defaults (but
lr="auto", see AUTO_LR), with `random_state` in place of `seed`; `fit` builds the TrainConfig
and calls `fnn.train`, so for a float32 X `FNNClassifier(random_state=7, **fields).fit(X, y)`
trains the very network that
`fnn.train(np.random.default_rng(7), TrainConfig(seed=7, **fields), (X, codes))` does, where
codes are the labels' positions in `classes_` (and lr the resolved one). Sample weights, warm
starts and partial_fit use the same `fnn.train`: (X, codes, w) triples, `params=` and
`opt_state=`.
"""

from __future__ import annotations

import math
import numbers
import warnings

import attrs
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from fnn.augment import as_augmentation
from fnn.config import TrainConfig, train
from fnn.layers import Dense
from fnn.nn import check_batch, eval_rows, forward, log_softmax, sigmoid
from fnn.text import count


DEFAULTS = TrainConfig()
# lr="auto", per optimizer: SGD (plain or momentum) takes TrainConfig's default; Adam 3e-3, three
# times Kingma & Ba's 1e-3, because fnn's defaults run 30 epochs under a cosine decay where
# MLPClassifier runs up to 200 at a constant 1e-3 (at 1e-3, a 32-16 network underfits
# check_estimator's 300-row problem in 30 epochs: 3 of its checks fail).
AUTO_LR = {"gd": DEFAULTS.lr, "sgd": DEFAULTS.lr, "adam": 3e-3}

# X arrives as float32 or float64 and stays so (the network then computes in that dtype);
# anything else (ints, objects holding numbers) becomes float32, fnn's default.
_X_DTYPES = (np.float32, np.float64)


def _no_validation_split(estimator) -> bool:
    """partial_fit's condition: it trains on every row, so it has no validation split to hold out."""
    if estimator.validation_fraction is not None:
        raise AttributeError("partial_fit does not support a validation split: set validation_fraction=None")
    return True


class FNNClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron trained by `fnn.train`, as a scikit-learn classifier.

    Parameters (those of `fnn.TrainConfig`, same names and defaults, see its docstring):
    hidden: hidden layer widths, e.g. (128,) or (256, 128); an int n means (n,).
    conv, kernel: convolutional blocks before them, channels of each (e.g. (32, 64); () for
        none) and their square kernel size; X's rows must then be square grayscale images
        (784 columns: 28x28).
    activation: "relu", "leaky_relu", "tanh" or "sigmoid"; dropout: rate after each hidden layer.
    epochs: the most epochs; batch_size: rows per update, or "full" / None for full batch.
    optimizer: "gd", "sgd" or "adam"; lr: (peak) learning rate, or "auto": 1e-3 for adam,
        TrainConfig's default (0.2) for sgd and gd; momentum, nesterov: sgd's.
    l2: weight penalty (l2/(2m)) Σ||W||² (MLPClassifier's alpha, the same convention);
        schedule: "constant", "step" or "cosine".
    patience, monitor, eval_every: early stopping on a validation split (needs
        validation_fraction), and how often it is evaluated; patience=np.inf: never stop.
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
    warm_start: a second `fit` continues from the params of the first (with a fresh optimizer
        state, as MLPClassifier), instead of a new network.
    verbose: print a line per evaluation (epoch, training loss, validation score).

    Data: X (m, n) numbers, dense or scipy.sparse (densified one batch at a time, never whole);
    float64 X trains a float64 network, float32 a float32 one, anything else float32. y: labels
    of any type (softmax over the classes; one class is allowed and always predicted), or a
    multilabel indicator matrix (m, k) of 0/1 (k sigmoid outputs; predict returns such a
    matrix). sample_weight: (m,) weights of the rows in the loss
    Σ_i w_i ℓ_i / Σw + (l2/(2Σw)) Σ||W||² (per batch) and in the validation score; a row of
    weight 0 counts as if absent.

    Attributes after `fit`:
    classes_: the sorted distinct labels of y, of y's dtype (0..k-1 for a multilabel y).
    n_features_in_ (and feature_names_in_ for a DataFrame with string column names).
    params_: the trained `fnn.Network`, widths (n_features_in_, *hidden, n_outputs_); with a
        validation split, the best evaluation's.
    config_: the `fnn.TrainConfig` it trained with (seed included); history_: `fnn.fit`'s
        history DataFrame of the last fit; stopped_: "completed", "early_stop" or "diverged".
    coefs_, intercepts_: the weight matrices W (n_in, n_out) and biases b of the network's Dense
        layers, in order (arrays of params_; for a CNN, the dense layers after the
        convolutional blocks only: the kernels are in params_).
    n_iter_: epochs the last fit or partial_fit call trained; t_: training rows seen across
        warm starts and partial_fit calls. loss_curve_: each epoch's training loss, likewise:
        the mean of its batches' losses J (l2 term included), each weighted by its rows, as
        MLPClassifier's (history_'s batch_loss at each epoch's end); loss_: its last value;
        best_loss_: its least, None with a validation split.
    validation_scores_: the validation accuracy at the end of each epoch (None without a
        validation split); best_validation_score_: its highest.
    n_layers_: layers counting the input (len(coefs_) + 1); n_outputs_: output units, one per
        class (two for two classes: fnn's softmax head, where MLPClassifier has one logistic
        unit) or per label; out_activation_: "softmax", or "logistic" for a multilabel y.

    Differences from MLPClassifier: fnn's parameter names (hidden, epochs, lr, l2, optimizer,
    patience, validation_fraction), no lbfgs and no identity activation, no tol: training
    runs its epochs unless early stopping on the validation split ends it. A diverging run
    (the loss stops being finite) ends with a ConvergenceWarning and keeps the last finite
    params, as MLPClassifier does; `fnn.fit` and the CLI raise instead.
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
        lr="auto",
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
        warm_start=False,
        verbose=False,
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
        self.warm_start = warm_start
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Train on X: (m, n) numbers and y: (m,) labels of any type or an (m, k) 0/1 multilabel
        matrix, rows weighted by sample_weight: (m,) or None; returns self. A new network, or,
        with warm_start and an earlier fit, that fit's params trained further.

        Raises ValueError for bad input or hyper-parameters, naming them. A run whose loss stops
        being finite warns (ConvergenceWarning) and keeps the last finite params.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_no_validation_split)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y) at the constant learning rate lr, continuing the params and the
        optimizer state (moments, update count) of the earlier fit or partial_fit; returns
        self. classes: every label y will ever hold, required on the first call (not for a
        multilabel y). Every row trains: with validation_fraction set, the estimator has no
        partial_fit (hasattr is False, a call raises AttributeError saying why)."""
        if not hasattr(self, "params_") and classes is None and np.ndim(y) == 1:
            raise ValueError("classes must be passed on the first call to partial_fit (every label y may hold)")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, X: (m, n_features_in_) -> (m, n_outputs_) in the params' dtype,
        column j for classes_[j]: softmax rows summing to 1, or each label's own sigmoid
        probability for a multilabel y."""
        logits = self._logits(X)
        return sigmoid(logits) if self.out_activation_ == "logistic" else np.exp(log_softmax(logits))

    def predict_log_proba(self, X) -> np.ndarray:
        """log of predict_proba, computed as log-softmax (or log-sigmoid): no log of a rounded-off 0."""
        logits = self._logits(X)
        return -np.logaddexp(0, -logits) if self.out_activation_ == "logistic" else log_softmax(logits)

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row: X: (m, n_features_in_) -> (m,) from classes_;
        for a multilabel y, the (m, k) 0/1 matrix of the labels whose probability is over 1/2."""
        logits = self._logits(X)  # first: before fit it raises NotFittedError
        if self.out_activation_ == "logistic":
            return (logits > 0).astype(np.int64)
        return self.classes_[np.argmax(logits, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------ the work

    def _fit(self, X, y, sample_weight, incremental: bool, classes=None):
        fresh = not hasattr(self, "params_") or not (incremental or self.warm_start)
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=_X_DTYPES, multi_output=True, reset=fresh)
        if y.ndim == 2 and type_of_target(y) != "multilabel-indicator":
            y = column_or_1d(y, warn=True)  # a column of labels: warned and flattened, as scikit-learn's own
        check_classification_targets(y)
        if fresh:
            self._set_classes(y, classes)
        elif not incremental and self.out_activation_ == "softmax" and not np.array_equal(np.unique(y), self.classes_):
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the previous call to fit. "
                f"Previously got {self.classes_}, `y` has {np.unique(y)}"
            )
        target = self._targets(y, classes)
        w = None if sample_weight is None else _check_sample_weight(sample_weight, X, dtype=X.dtype)
        config = self._config(_seed(self.random_state) if fresh else self.config_.seed)
        if incremental:  # one epoch at a constant rate, its shuffle seeded by the rows seen so far (t_)
            config = attrs.evolve(config, epochs=1, schedule="constant")
            rng = np.random.default_rng((config.seed, 0 if fresh else self.t_))
        else:
            rng = np.random.default_rng(config.seed)
        train_set, dev_set = _with_weights(X, target, w), None
        if self.validation_fraction is not None and not incremental:
            split_rng, rng = rng.spawn(2)
            train_set, dev_set = _hold_out(split_rng, X, target, w, self.validation_fraction, self.classes_)
        if fresh:  # a new network of X's dtype, one output per class
            start = dict(outputs=len(self.classes_), dtype=X.dtype)
        else:  # the last update's params and optimizer state, or a warm start's params
            start = dict(params=self.params_, opt_state=self._opt_state) if incremental else dict(params=self.params_)
        result = train(rng, config, train_set, dev_set, callback=self._printer(), **start)
        if result.stopped == "diverged":  # best_params are then the last recorded, finite ones
            warnings.warn(
                f"FNNClassifier {result.message}; kept the parameters of step {result.state.step}; "
                "try a smaller lr or scaled inputs (e.g. StandardScaler)", ConvergenceWarning, stacklevel=3,
            )
        self._record(config, result, fresh, train_set[0].shape[0])
        return self

    def _set_classes(self, y, classes) -> None:
        """classes_ and out_activation_ from the first y (and partial_fit's classes)."""
        if type_of_target(y) == "multilabel-indicator":
            self.classes_, self.out_activation_ = np.arange(y.shape[1]), "logistic"
            return
        self.classes_ = np.unique(y if classes is None else np.asarray(classes))
        self.out_activation_ = "softmax"

    def _targets(self, y, classes) -> np.ndarray:
        """The heads' y: codes (m,) int64, positions in classes_, or the (m, k) 0/1 matrix."""
        if self.out_activation_ == "logistic":
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"y must be a multilabel indicator matrix of {len(self.classes_)} columns, as before")
            return y
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D labels, as in the first fit; got shape {y.shape}")
        if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={classes!r} is not the classes of the first call, {self.classes_!r}")
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y holds {y[unknown][0]!r}, not one of classes_ {self.classes_!r}: pass every label in "
                "classes= on the first partial_fit"
            )
        if y.dtype == np.int64 and np.array_equal(self.classes_, np.arange(len(self.classes_))):
            return y  # already the codes: no copy of a large y
        return np.searchsorted(self.classes_, y).astype(np.int64, copy=False)

    def _printer(self):
        """verbose: a callback printing each history row (None when quiet)."""
        if not self.verbose:
            return None

        def show(row: dict) -> None:
            dev = "" if math.isnan(row["dev_acc"]) else f", validation score = {row['dev_acc']:.6f}"
            print(f"epoch {row['epoch']}, step {row['step']}, loss = {row['batch_loss']:.8f}{dev}", flush=True)

        return show

    def _record(self, config, result, fresh: bool, rows: int) -> None:
        """The fitted attributes of a finished fit (history columns: see `fnn.fit`)."""
        history = result.history
        ends = history[history["epoch"].diff().fillna(history["epoch"]) > 0]  # each epoch's last row
        losses = [float(v) for v in ends["batch_loss"]]
        scores = [float(v) for v in ends["dev_acc"]] if result.history["dev_acc"].notna().any() else None
        epochs = int(result.state.epoch)
        if fresh:
            self.t_, self.loss_curve_, self.validation_scores_ = 0, [], None
        kept = result.best_params
        self.params_, self.config_, self.history_, self.stopped_ = kept, config, history, result.stopped
        self._opt_state = result.state.opt_state  # what partial_fit continues (private: a pickle carries it)
        self.coefs_ = [layer.W for layer in kept.layers if isinstance(layer, Dense)]
        self.intercepts_ = [layer.b for layer in kept.layers if isinstance(layer, Dense)]
        self.n_layers_, self.n_outputs_ = len(self.coefs_) + 1, self.coefs_[-1].shape[1]
        self.n_iter_ = epochs
        self.t_ += epochs * rows
        self.loss_curve_ = self.loss_curve_ + losses
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else math.nan
        if scores is not None:
            self.validation_scores_ = (self.validation_scores_ or []) + scores
            self.best_validation_score_, self.best_loss_ = max(self.validation_scores_), None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else math.nan

    def _logits(self, X) -> np.ndarray:
        """A_L of X's rows: `fnn.forward`, which runs in chunks; a sparse X is densified a chunk
        at a time."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=_X_DTYPES, reset=False)
        params = self.params_
        if not hasattr(X, "toarray"):
            return forward(params, X)
        rows = eval_rows(params, check_batch(params, X[:1].toarray())[0])
        return np.concatenate([forward(params, X[s : s + rows].toarray()) for s in range(0, X.shape[0], rows)])

    def _config(self, seed: int) -> TrainConfig:
        """The TrainConfig of the current parameters; a bad value is a ValueError naming it."""
        patience = None if self.patience is not None and self.patience == math.inf else self.patience
        if patience is not None and self.validation_fraction is None:
            raise ValueError("patience needs a validation split to monitor: set validation_fraction, e.g. 0.1")
        try:
            augment = as_augmentation(self.augment)
        except (TypeError, ValueError) as error:
            raise ValueError(f"FNNClassifier: augment: {error}") from None
        lr = self.lr
        if isinstance(lr, str) and lr == "auto":
            lr = AUTO_LR.get(self.optimizer, DEFAULTS.lr)
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
                lr=lr,
                momentum=self.momentum,
                nesterov=self.nesterov,
                l2=self.l2,
                schedule=self.schedule,
                patience=patience,
                monitor=self.monitor,
                eval_every=self.eval_every,
                augment=augment,
                seed=seed,
            )
        except TypeError as error:  # e.g. hidden=None: tuple() of it fails before any validator
            raise ValueError(f"FNNClassifier: hidden must be a tuple of positive ints, got {self.hidden!r} ({error})") from None


def expected_failed_checks(estimator: FNNClassifier) -> dict[str, str]:
    """The checks of `sklearn.utils.estimator_checks.check_estimator` that these settings cannot
    pass, each mapped to the reason (pass it as `expected_failed_checks=`); {} for the defaults.

    Both are the sample-weight equivalence checks (a row of integer weight w must train as w
    copies of it would), which randomness per row breaks: it holds in expectation only."""
    reasons = []
    if estimator.dropout:
        reasons.append("dropout draws a mask per row: a row of weight 2 sees one mask, two copies of it two")
    if estimator.validation_fraction is not None:
        reasons.append("the validation split draws rows: a weighted row and its copies are held out differently")
    checks = ("check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data")
    return {check: "; ".join(reasons) for check in checks} if reasons else {}


def _seed(random_state) -> int:
    """The int seed of scikit-learn's random_state convention (int, RandomState or None)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if random_state is None:
        return int(np.random.SeedSequence().entropy)  # fresh entropy: a new network each fit
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _with_weights(X, target, w) -> tuple:
    """fnn.fit's training set: (X, y) or, with weights, (X, y, w)."""
    return (X, target) if w is None else (X, target, w)


def _hold_out(rng: np.random.Generator, X, target, w, fraction, classes) -> tuple:
    """(train set, dev set): `fraction` of each class's rows held out at random (at least one
    row in all, at least one row of each class left to train on); a multilabel target is not
    stratified (as scikit-learn): its rows are one group."""
    if not (isinstance(fraction, numbers.Real) and 0 < fraction < 1):
        raise ValueError(f"validation_fraction must be None or a number in (0, 1), got {fraction!r}")
    groups = np.zeros(len(target), dtype=np.int64) if target.ndim == 2 else target
    held = np.zeros(len(groups), dtype=bool)
    for label in np.unique(groups):
        rows = rng.permutation(np.flatnonzero(groups == label))
        held[rows[: min(int(round(fraction * len(rows))), len(rows) - 1)]] = True
    if not held.any():
        sizes = np.bincount(groups)
        least = int(np.argmin(np.where(sizes > 0, sizes, sizes.max() + 1)))
        name = f" ({np.asarray(classes[least]).item()!r})" if target.ndim == 1 else ""  # 'b', not np.str_('b')
        raise ValueError(
            f"validation_fraction={fraction} of {count(len(groups), 'sample')} holds out no row: the least populated class "
            f"in y{name} has only {count(int(sizes[least]), 'member')}; pass a larger validation_fraction or more rows"
        )
    keep = ~held
    pick = lambda mask: (X[mask], target[mask]) if w is None else (X[mask], target[mask], w[mask])  # noqa: E731
    return pick(keep), pick(held)
