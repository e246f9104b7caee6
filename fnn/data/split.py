"""Pure functions from datasets to datasets: the seeded `split` and its inverse, `concat`.

    splits = split(train, rng, dev=5000, test_set=load_test_set("mnist"))
    both = concat(splits.train, splits.dev)     # a final refit on train + dev

Neither modifies its inputs; both return fresh arrays.
"""

from __future__ import annotations

import attrs
import numpy as np

from fnn.checks import generator, is_int
from fnn.data.dataset import Dataset, Splits


def split(
    dataset: Dataset,
    rng: np.random.Generator,
    dev: int | float | None = 0,
    test: int | float | None = 0,
    stratify: bool = False,
    *,
    test_set: Dataset | None = None,
) -> Splits:
    """Seeded, disjoint train/dev/test parts of `dataset`; the input is not modified.

    dev, test: an int is a number of rows, a float in (0, 1) a fraction of `dataset`'s rows
        (rounded to the nearest row); None means 0.
    stratify: give each class its share of test and dev instead of a plain random draw; needs
        labels. With K classes present, a class of c rows gets within 1/2 + (K/2)·c/n rows of
        test·c/n in test and within 1 + K·c/n rows of dev·c/n in dev (under 1 and 2 rows for
        ten classes of about equal size; see _stratified_order).
    test_set: an official test set (`load_test_set`), returned as `Splits.test` unchanged;
        then `test` must be 0 or None, and dev is carved from `dataset` alone.
    The same generator state gives the same split; train, dev and test keep file order.
    """
    generator("rng", rng)
    n = len(dataset.X)
    n_dev = _count("dev", dev, n)
    n_test = _count("test", test, n)
    if test_set is not None and n_test:
        raise ValueError(
            f"test={test!r} asks for a test split, but test_set= already gives the official "
            f"test set; pass test=0 (dev is then carved from the training data)"
        )
    if n_dev + n_test >= n:
        raise ValueError(
            f"dev={dev!r} ({n_dev} rows) and test={test!r} ({n_test} rows) leave no training "
            f"rows out of {n}"
        )
    if stratify and dataset.y is None:
        raise ValueError(f"stratify=True needs labels, but {dataset.source} has y=None")
    order = _stratified_order(rng, dataset.y) if stratify else rng.permutation(n)
    test_rows, dev_rows, train_rows = np.split(order, [n_test, n_test + n_dev])
    return Splits(
        train=_take(dataset, train_rows),
        dev=_take(dataset, dev_rows),
        test=test_set if test_set is not None else _take(dataset, test_rows),
    )


def concat(*datasets: Dataset, source: str | None = None) -> Dataset:
    """The rows of `datasets`, one dataset after another, as one Dataset (fresh arrays).

    X: (n_1 + ... + n_d, 784), y likewise (None when every part is unlabeled). All parts must
    describe the same problem: the same class_names, the same row width, and labels in all
    or in none of them; ValueError names the first part that differs.
    source: the result's source; default the parts' distinct sources joined by " + ".
    """
    if not datasets:
        raise ValueError("concat needs at least one Dataset, got none")
    first = datasets[0]
    for i, part in enumerate(datasets[1:], start=1):
        if tuple(part.class_names) != tuple(first.class_names):
            raise ValueError(
                f"concat: part {i} ({part.source}) has class_names {tuple(part.class_names)!r}, but "
                f"part 0 ({first.source}) has {tuple(first.class_names)!r}; only rows of the "
                f"same problem can be joined"
            )
        if part.X.shape[1:] != first.X.shape[1:]:
            raise ValueError(
                f"concat: part {i} ({part.source}) has rows of shape {part.X.shape[1:]}, but "
                f"part 0 ({first.source}) has {first.X.shape[1:]}"
            )
        if (part.y is None) != (first.y is None):
            labeled, unlabeled = (first, part) if part.y is None else (part, first)
            raise ValueError(
                f"concat: {unlabeled.source} has no labels (y=None) but {labeled.source} has; "
                f"join labeled parts only, or unlabeled parts only"
            )
    y = None if first.y is None else np.concatenate([part.y for part in datasets])
    sources = list(dict.fromkeys(part.source for part in datasets))
    return attrs.evolve(
        first,
        X=np.concatenate([part.X for part in datasets]),
        y=y,
        source=" + ".join(sources) if source is None else source,
    )


def _count(name: str, value, n: int) -> int:
    """A split size given as a count or a fraction of n -> a count in 0..n."""
    if value is None:
        return 0
    if is_int(value):
        if not 0 <= value <= n:
            raise ValueError(f"{name}={value} rows is outside 0..{n} (the dataset's size)")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name}={value} as a fraction must lie strictly between 0 and 1")
        return int(round(value * n))
    raise ValueError(
        f"{name} must be a row count (int) or a fraction in (0, 1) (float), got {value!r}"
    )


def _stratified_order(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """A permutation of rows whose every prefix holds each class in about its proportion.

    Rows are shuffled, ranked within their class (r = 0..c-1 for a class of c rows) and
    ordered by position (r + 1/2) / c. The prefix of every row up to position t holds
    t·c ± 1/2 rows of each class, so its length k is t·n ± K/2 (K classes), and each class
    has k·c/n ± (1/2 + (K/2)·c/n) rows of it; dev, the difference of two prefixes, twice that.
    """
    shuffled = rng.permutation(len(y))
    _, label, counts = np.unique(y[shuffled], return_inverse=True, return_counts=True)
    by_class = np.argsort(label, kind="stable")
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(y))
    rank[by_class] = np.arange(len(y)) - np.repeat(starts, counts)
    position = (rank + 0.5) / counts[label]
    return shuffled[np.argsort(position, kind="stable")]


def _take(dataset: Dataset, rows: np.ndarray) -> Dataset:
    """The rows of `dataset` at `rows`, in file order (fresh arrays)."""
    rows = np.sort(rows)
    y = None if dataset.y is None else dataset.y[rows]
    return attrs.evolve(dataset, X=dataset.X[rows], y=y)
