"""The records every source ends up as: `Dataset` (images and labels) and `Splits`.

    X: (n, 784) float32 in [0, 1]   pixels / 255, each 28x28 image flattened row-major
    y: (n,) int64 in 0..9, or None   None only for unlabeled data (Kaggle `test.csv`)

Readers build a `Dataset` from raw uint8 pixels with `from_pixels`, the one place where
pixels become floats.
"""

from __future__ import annotations

import hashlib

import attrs
import numpy as np

N_PIXELS = 784
IMAGE_SHAPE = (28, 28)
DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@attrs.frozen(eq=False)
class Dataset:
    """Images and labels from one source.

    X: (n, 784) float32 in [0, 1], pixel / 255, each row a 28x28 image in row-major order.
    y: (n,) int64 class indices in 0..9, or None for unlabeled data (Kaggle `test.csv`).
    class_names: the 10 names, `class_names[y[i]]` naming row i's class.
    source: where the rows came from (a path, or a named dataset and its directory).
    """

    X: np.ndarray
    y: np.ndarray | None
    class_names: tuple[str, ...]
    source: str


@attrs.frozen(eq=False)
class Splits:
    """Disjoint train, dev and test parts; `test` is the official test set when one exists."""

    train: Dataset
    dev: Dataset
    test: Dataset


def from_pixels(pixels: np.ndarray, y: np.ndarray | None, class_names, source: str) -> Dataset:
    """pixels: (n, 784) uint8 -> Dataset with X = pixels / 255 as float32 (one allocation).

    y: (n,) int64 or None, kept as given; class_names: any sequence of names, stored as a tuple.
    """
    X = pixels.astype(np.float32)
    X /= 255
    return Dataset(X=X, y=y, class_names=tuple(class_names), source=source)


def fingerprint(splits: Splits) -> dict:
    """What a run trained on, to tell later whether the data is still the same:
    {train_rows, dev_rows, test_rows, sha256}, the hash over each part's X and y bytes (with
    their dtypes and shapes), in the order train, dev, test. About 1 s per GB of pixels."""
    digest = hashlib.sha256()
    for part in (splits.train, splits.dev, splits.test):
        for array in (part.X, part.y):
            if array is None:
                digest.update(b"none")
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
    return {
        "train_rows": len(splits.train.X),
        "dev_rows": len(splits.dev.X),
        "test_rows": len(splits.test.X),
        "sha256": digest.hexdigest(),
    }
