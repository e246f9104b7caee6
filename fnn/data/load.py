"""The one entry point: `load_dataset(source)` turns any source into a `Dataset`.

Sources:

- a Kaggle CSV, `.csv` or `.csv.gz`, or a headerless label-last CSV with
  `layout="label-last"` (`fnn.data.csv`);
- a folder of IDX files, gzipped or raw (`fnn.data.idx`);
- `"sample"`: 5,000 real MNIST digits (500 per class) shipped inside the package;
- `"mnist"`, `"fashion-mnist"`: cached, found on the system or downloaded and checked
  (`fnn.data.named`).

MNIST, Fashion-MNIST and IDX folders come with an official test set; `load_test_set(source)`
returns it (None for CSV files and the sample, which `split` divides themselves).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fnn.checks import one_of
from fnn.data.csv import LAYOUTS, is_csv, read_csv
from fnn.data.dataset import DIGIT_NAMES, Dataset, from_pixels
from fnn.data.idx import read_idx_folder
from fnn.data.named import NAMED, Progress, check_progress, load_named
from fnn.errors import DataError

SAMPLE_PATH = Path(__file__).parent.parent / "datasets" / "mnist_sample.npz"


def load_dataset(
    source: str | os.PathLike,
    *,
    layout: str = "kaggle",
    data_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """Load the training part of `source` (or the whole of a CSV file) as a `Dataset`.

    source: "sample", "mnist", "fashion-mnist", a `.csv`/`.csv.gz` path or a folder of IDX files.
    layout: CSV layout, "kaggle" (recognised by its header) or "label-last" (no header,
        784 pixels then the label on each line). Only meaningful for CSV files.
    data_dir: cache directory for "mnist"/"fashion-mnist" (default `$FNN_DATA` or
        `~/.cache/fnn`); mirrors: base URLs to download from instead of the published ones;
    progress: None, or `progress(bytes_done, bytes_total_or_None, file_name)`, called while
        a file downloads (see `fnn.data.named`); the library itself prints nothing.
    """
    one_of("layout", layout, LAYOUTS)
    check_progress(progress)
    if isinstance(source, str) and source == "sample":
        _check_no_layout(source, layout)
        return _load_sample()
    if isinstance(source, str) and source in NAMED:
        _check_no_layout(source, layout)
        return load_named(source, "train", data_dir, mirrors, progress)
    path = _existing_path(source)
    if path.is_dir():
        _check_no_layout(source, layout)
        return read_idx_folder(path, "train")
    return read_csv(path, layout=layout)


def load_test_set(
    source: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    progress: Progress | None = None,
) -> Dataset | None:
    """The official test set of `source`: the t10k files of "mnist", "fashion-mnist" or an
    IDX folder; None for "sample" and CSV files, which `split` divides themselves.

    Arguments as in `load_dataset`.
    """
    check_progress(progress)
    if isinstance(source, str) and source == "sample":
        return None
    if isinstance(source, str) and source in NAMED:
        return load_named(source, "test", data_dir, mirrors, progress)
    path = _existing_path(source)
    if path.is_dir():
        return read_idx_folder(path, "test")
    return None


def _check_no_layout(source, layout: str) -> None:
    if layout != "kaggle":
        raise DataError(f"{source}: layout={layout!r} (--layout) applies to CSV files only; leave it out for this source")


def _existing_path(source: str | os.PathLike) -> Path:
    path = Path(source)
    if path.is_dir() or (path.is_file() and is_csv(path)):
        return path
    names = ", ".join(repr(n) for n in ("sample", *NAMED))
    if path.is_file():
        what = "is not a .csv or .csv.gz file"
    elif path.exists():  # is_file() follows links: this is a FIFO, device or socket
        what = "is not a regular file (a FIFO, device or socket)"
    else:
        what = "does not exist"
    raise DataError(
        f"data source {str(source)!r} {what}; expected one of {names}, a .csv/.csv.gz file "
        f"(Kaggle layout) or a folder of IDX files"
    )


def _load_sample() -> Dataset:
    """The bundled 5,000-digit MNIST sample (built by scripts/build_sample.py)."""
    with np.load(SAMPLE_PATH, allow_pickle=False) as archive:
        pixels, labels = archive["pixels"], archive["labels"]
    return from_pixels(pixels, labels.astype(np.int64), DIGIT_NAMES, "sample")
