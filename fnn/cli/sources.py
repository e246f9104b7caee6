"""What `fnn evaluate` and `fnn predict` read: the rows a data source offers for scoring, and
the check that a saved model fits them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fnn.data import Dataset, load_dataset, load_test_set
from fnn.errors import ModelFileError
from fnn.nn import predict_proba
from fnn.params import layer_sizes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def rows_to_score(source: str, layout: str, progress) -> Dataset:
    """The official test set when the source has one (MNIST, Fashion-MNIST, an IDX folder),
    else every row of the source."""
    return load_test_set(source, progress=progress) or load_dataset(source, layout=layout, progress=progress)


def constant_label_note(dataset: Dataset, layout: str) -> str | None:
    """What to say when --layout label-last read the same label on every row: most likely the
    file is not label-last (a headerless label-first file gives pixel783, all 0, as the label).
    None when the labels vary, or the layout is Kaggle's (whose header names the label column)."""
    if layout != "label-last" or dataset.y is None or len(dataset.y) < 2 or (dataset.y != dataset.y[0]).any():
        return None
    return (
        f"{dataset.source}: every row has label {int(dataset.y[0])} as --layout label-last reads it (the last "
        f"column); if the label is the file's first column, put Kaggle's header line 'label,pixel0,...,pixel783' "
        f"on top and leave --layout out"
    )


def check_model_fits(model_path: Path, params, dataset: Dataset) -> None:
    """ModelFileError unless the model takes the rows' width (and, for labelled rows, has as
    many classes as the data)."""
    sizes = layer_sizes(params)
    if sizes[0] != dataset.X.shape[1]:
        raise ModelFileError(
            f"{model_path}: the model takes {sizes[0]} inputs but {dataset.source} rows have "
            f"{dataset.X.shape[1]} pixels; use a model trained on such images"
        )
    if dataset.y is not None and len(dataset.class_names) != sizes[-1]:
        raise ModelFileError(
            f"{model_path}: the model has {sizes[-1]} classes but {dataset.source} has "
            f"{len(dataset.class_names)}; use a model trained on these classes"
        )


def finite_probabilities(model_path: Path, params, X: np.ndarray) -> np.ndarray:
    """predict_proba(params, X), or ModelFileError naming the model file when a row's
    probabilities are not finite (weights that overflow the param dtype give NaN, which would
    otherwise be written as label 0, or as NaN in JSON). X: (m, n) -> P: (m, k)."""
    with np.errstate(over="ignore", invalid="ignore"):  # the check below says it, once, in words
        proba = predict_proba(params, X)
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        raise ModelFileError(
            f"{model_path}: the model's output is not a number for {int(bad.sum()):,} of {len(proba):,} rows "
            f"(row {int(np.flatnonzero(bad)[0])} first): its weights or settings overflow {proba.dtype}; "
            "the model is unusable, retrain it"
        )
    return proba
