"""fnn: a from-scratch NumPy neural network — pure functions over frozen attrs records.

`import fnn` loads numpy, attrs and toolz only. The names of the edges (data sources, model
files, images, metrics, figures, tuning) load their modules, and pandas, matplotlib and PIL,
the first time they are used.
"""

import importlib

from fnn.errors import DataError, ModelFileError, TrainingDiverged, UserError
from fnn.gradcheck import check_grads, numeric_grads, relative_error
from fnn.conv import Conv2D, MaxPool2D
from fnn.layers import Dense, Dropout, Flatten, LeakyRelu, Relu, Reshape, Sigmoid, Tanh
from fnn.nn import (
    backprop,
    cross_entropy,
    forward,
    grads,
    log_softmax,
    loss,
    predict,
    predict_proba,
    softmax,
    step,
    value_and_grads,
)
from fnn.optim import Optimizer, adam, apply_updates, chain, constant, cosine, gd, sgd, step_decay
from fnn.params import MLP, Network, init, layer_sizes
from fnn.training import Batch, TrainState, batches, copy_state, evaluate, init_state, train_step
from fnn.fitting import FitResult, fit
from fnn.config import TrainConfig, make_optimizer, train
from fnn.version import __version__
from fnn.tree import global_norm, static, tree_allclose, tree_leaves, tree_map, tree_zeros_like

_LAZY = {
    "Dataset": "fnn.data",
    "Splits": "fnn.data",
    "load_dataset": "fnn.data",
    "load_test_set": "fnn.data",
    "split": "fnn.data",
    "concat": "fnn.data",
    "atomic_path": "fnn.files",
    "load_model": "fnn.io",
    "save_model": "fnn.io",
    "load_digit_image": "fnn.images",
    "RunResult": "fnn.run",
    "run_training": "fnn.run",
}


def __getattr__(name: str):
    """Load an edge module the first time one of its names is used (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
