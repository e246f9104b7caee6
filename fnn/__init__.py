"""fnn: a from-scratch NumPy neural network — pure functions over frozen attrs records."""

from fnn.data import DataError, Dataset, Splits, load_dataset, load_test_set, split
from fnn.images import load_digit_image
from fnn.io import ModelFileError, atomic_path, load_model, save_model
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
from fnn.params import MLP, Dense, init, layer_sizes
from fnn.tree import global_norm, tree_allclose, tree_leaves, tree_map, tree_zeros_like

__version__ = "0.1.0"
