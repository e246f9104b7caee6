"""A training run as data: `TrainConfig`, the optimizer it names, and `train`, which builds the
network and fits it.

    result = train(np.random.default_rng(0), TrainConfig(hidden=(128,), activation="tanh"), train_set, dev_set)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from fnn import checks
from fnn.augment import Augmentation, as_augmentation, transform
from fnn.fitting import MONITORS, FitResult, Monitor, arrays, fit
from fnn.layers import ACTIVATIONS
from fnn.optim import Optimizer, adam, constant, cosine, gd, sgd, step_decay
from fnn.conv import square_image
from fnn.params import init
from fnn.training import steps_per_epoch
from fnn.tree import tree_map

OPTIMIZERS = ("gd", "sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")


def _validated(check, *args):
    """An attrs validator running `check(field name, value, *args)`."""
    return lambda instance, attribute, value: check(attribute.name, value, *args)


def _hidden_sizes(name, value):
    if not all(checks.is_int(n) and n >= 1 for n in value):
        raise ValueError(f"{name} must be a tuple of positive ints (one per hidden layer), got {value!r}")


def _batch_size(name, value):
    steps_per_epoch(1, value)  # raises on anything but a positive int, None or "full"


@attrs.frozen
class TrainConfig:
    """The hyper-parameters of one training run; the defaults are what `fnn train` runs with.

    hidden: widths of the hidden layers, e.g. (128,) for 784-128-10.
    conv: channels of each convolutional block before them, e.g. (32, 64) ((): none, an MLP);
        kernel: their square kernel size (see `fnn.init`).
    activation: "relu", "leaky_relu", "tanh" or "sigmoid" after each hidden Dense layer.
    dropout: rate of a Dropout layer after each hidden activation (0: none).
    epochs: the most epochs to run (early stopping may end sooner).
    batch_size: rows per update, or None / "full" for full-batch gradient descent.
    optimizer: "gd", "sgd" (with momentum / nesterov) or "adam"; lr its (peak) learning rate.
    schedule: "constant", "step" (×0.1 after each third of the run) or "cosine" (down to 0
        at the last epoch).
    l2: weight penalty (l2/(2m)) Σ||W||².
    patience: early stopping after this many evaluations without improving `monitor`
        ("dev_acc" or "dev_loss"); None turns it off.
    eval_every: a history row every this many updates, besides each epoch's end; None: epochs only.
    augment: the distortions of every training batch (`fnn.augment.Augmentation`; also given as
        its text, "shift,affine,elastic=34:4", or its fields as a dict); None: none.
    seed: the run's seed (the CLI builds `np.random.default_rng(seed)` from it).
    """

    hidden: tuple[int, ...] = attrs.field(default=(128,), converter=tuple, validator=_validated(_hidden_sizes))
    conv: tuple[int, ...] = attrs.field(default=(), converter=tuple, validator=_validated(_hidden_sizes))
    kernel: int = attrs.field(default=3, validator=_validated(checks.positive_int))
    activation: str = attrs.field(default="relu", validator=_validated(checks.one_of, tuple(ACTIVATIONS)))
    dropout: float = attrs.field(default=0.0, validator=_validated(checks.fraction))
    epochs: int = attrs.field(default=30, validator=_validated(checks.positive_int))
    batch_size: int | str | None = attrs.field(default=128, validator=_validated(_batch_size))
    optimizer: str = attrs.field(default="sgd", validator=_validated(checks.one_of, OPTIMIZERS))
    lr: float = attrs.field(default=0.2, validator=_validated(checks.positive_float))
    momentum: float = attrs.field(default=0.9, validator=_validated(checks.fraction))
    nesterov: bool = False
    l2: float = attrs.field(default=0.3, validator=_validated(checks.non_negative_float))
    schedule: str = attrs.field(default="cosine", validator=_validated(checks.one_of, SCHEDULES))
    patience: int | None = attrs.field(default=None, validator=_validated(checks.optional_positive_int))
    monitor: str = attrs.field(default="dev_acc", validator=_validated(checks.one_of, MONITORS))
    eval_every: int | None = attrs.field(default=None, validator=_validated(checks.optional_positive_int))
    augment: Augmentation | None = attrs.field(default=None, converter=as_augmentation)
    seed: int = 0


def build_network(rng: np.random.Generator, config: TrainConfig, n_in: int, classes: int, dtype=np.float32):
    """`fnn.init` of the network `config` describes, for rows of n_in values and `classes`
    outputs, its parameters in `dtype`: drawn in float32 and cast, so runs of one seed in
    float32 and in float64 start from the same network."""
    conv = dict(conv=config.conv, kernel=config.kernel, image_shape=square_image(n_in)) if config.conv else {}
    params = init(rng, (n_in, *config.hidden, classes), config.activation, config.dropout, np.float32, **conv)
    return params if np.dtype(dtype) == np.float32 else tree_map(lambda a: a.astype(dtype), params)


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> Optimizer:
    """The optimizer `config` names, its learning rate following `config.schedule` over the
    run's `config.epochs * steps_per_epoch` updates."""
    total = config.epochs * steps_per_epoch
    lr = {
        "constant": lambda: constant(config.lr),
        "step": lambda: step_decay(config.lr, every=max(1, -(-total // 3)), factor=0.1),  # 2 drops
        "cosine": lambda: cosine(config.lr, total=total),
    }[config.schedule]()
    if config.optimizer == "gd":
        return gd(lr)
    if config.optimizer == "sgd":
        return sgd(lr, config.momentum, config.nesterov)
    return adam(lr)


def train(
    rng: np.random.Generator,
    config: TrainConfig,
    train_set,
    dev_set=None,
    callback: Callable[[dict], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    checkpoint: Callable[[Monitor], Any] | None = None,
    resume: Monitor | None = None,
    *,
    params=None,
    opt_state: Any = None,
    outputs: int | None = None,
    dtype=np.float32,
) -> FitResult:
    """Build a network of widths (n_0, *config.hidden, k) with `config`'s activation and
    dropout (`fnn.init`) and `fit` it.

    train_set, dev_set: Datasets, (X, y) pairs or (X, y, w) triples (see `fit`). k is
    `outputs` when given, else the number of class names of a Dataset, the columns of a
    multilabel y, else max(y) + 1 of the training labels; the network's params are `dtype`. rng is split in two: one stream initialises the weights, the other drives
    `fit`. callback, clock, checkpoint, resume and opt_state are passed on to `fit` (a resumed
    run still draws the initial weights, so its streams are the original's).
    params: train these instead of a new network (a warm start; the init stream is still
    split off, so fit's streams are a fresh run's).
    """
    X, y, _ = arrays("train_set", train_set)
    init_rng, fit_rng = rng.spawn(2)
    if params is None:
        classes = (
            outputs if outputs is not None
            else len(train_set.class_names) if hasattr(train_set, "class_names")
            else y.shape[1] if np.ndim(y) == 2 else int(np.max(y)) + 1
        )
        params = build_network(init_rng, config, X.shape[1], classes, dtype)
    optimizer = make_optimizer(config, steps_per_epoch(X.shape[0], config.batch_size))
    return fit(
        fit_rng,
        params,
        optimizer,
        train_set,
        dev_set,
        epochs=config.epochs,
        batch_size=config.batch_size,
        l2=config.l2,
        eval_every=config.eval_every,
        patience=config.patience if dev_set is not None else None,
        monitor=config.monitor,
        callback=callback,
        clock=clock,
        checkpoint=checkpoint,
        resume=resume,
        augment=transform(config.augment),
        opt_state=opt_state,
    )
