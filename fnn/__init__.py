"""fnn: a from-scratch NumPy neural network — pure functions over frozen attrs records.

`import fnn` loads nothing heavy: each name loads its module the first time it is used, the
core (layers, passes, optimizers, the fold) with numpy, attrs and toolz only; the edges (data
sources, model files, images, metrics, figures, tuning) with pandas, matplotlib and PIL.
"""

import importlib

# Every public name and the module that defines it. `import fnn` imports none of them: the
# first use of a name loads its module (numpy, attrs and toolz for the core; pandas,
# matplotlib and PIL for the edges), so the `fnn` command can take SIGINT and SIGTERM before
# anything slow is loaded (see `fnn.cli`).
_NAMES = {
    "fnn.errors": ("DataError", "ModelFileError", "TrainingDiverged", "UserError"),
    "fnn.gradcheck": ("check_grads", "numeric_grads", "relative_error"),
    "fnn.conv": ("Conv2D", "MaxPool2D"),
    "fnn.layers": ("Dense", "Dropout", "Flatten", "LeakyRelu", "Relu", "Reshape", "Sigmoid", "Tanh"),
    "fnn.nn": (
        "backprop", "cross_entropy", "forward", "grads", "log_softmax", "loss", "predict", "predict_proba",
        "softmax", "step", "value_and_grads",
    ),
    "fnn.optim": ("Optimizer", "adam", "apply_updates", "chain", "constant", "cosine", "gd", "sgd", "step_decay"),
    "fnn.params": ("MLP", "Network", "init", "layer_sizes"),
    "fnn.training": ("Batch", "TrainState", "batches", "copy_state", "evaluate", "init_state", "train_step"),
    "fnn.fitting": ("FitResult", "fit"),
    "fnn.config": ("TrainConfig", "make_optimizer", "train"),
    "fnn.version": ("__version__",),
    "fnn.tree": ("global_norm", "static", "tree_allclose", "tree_leaves", "tree_map", "tree_zeros_like"),
    "fnn.data": ("Dataset", "Splits", "load_dataset", "load_test_set", "split", "concat"),
    "fnn.files": ("atomic_path",),
    "fnn.io": ("load_model", "save_model"),
    "fnn.images": ("load_digit_image",),
    "fnn.run": ("RunResult", "run_training"),
}
_MODULE = {name: module for module, names in _NAMES.items() for name in names}
__all__ = sorted(_MODULE)


def __getattr__(name: str):
    """Load the module of a public name the first time it is used (PEP 562)."""
    if name in _MODULE:
        return getattr(importlib.import_module(_MODULE[name]), name)
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MODULE))
