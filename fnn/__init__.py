"""fnn: a from-scratch NumPy neural network — pure functions over frozen attrs records."""

from fnn.data import Dataset, Splits, load_dataset, load_test_set, split
from fnn.gradcheck import check_grads, numeric_grads, relative_error
from fnn.images import load_digit_image
from fnn.errors import DataError, ModelFileError, UserError
from fnn.files import atomic_path
from fnn.io import load_model, save_model
from fnn.nn import (
    cross_entropy,
    forward,
    grads,
    log_softmax,
    loss,
    predict,
    predict_proba,
    relu,
    softmax,
    step,
    value_and_grads,
)
from fnn.optim import Optimizer, adam, apply_updates, chain, constant, cosine, gd, sgd, step_decay
from fnn.params import MLP, Dense, init, layer_sizes
from fnn.train import (
    Batch,
    FitResult,
    TrainConfig,
    TrainState,
    batches,
    evaluate,
    fit,
    init_state,
    make_optimizer,
    train,
    train_step,
)
from fnn.tree import global_norm, tree_allclose, tree_leaves, tree_map, tree_zeros_like

__version__ = "0.1.0"
