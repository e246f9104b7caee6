"""Data: where digits come from, how raw files are checked, and how they are split.

Every source ends up as a `Dataset`:

    X: (n, 784) float32 in [0, 1]   pixels / 255, each 28x28 image flattened row-major
    y: (n,) int64 in 0..9, or None   None only for unlabeled data (Kaggle `test.csv`)

`load_dataset(source)` is the one entry point; it returns the training part of a source, or
the whole CSV. MNIST and Fashion-MNIST come with an official test set, which
`load_test_set(source)` returns and `split` keeps as the test split:

    train = load_dataset("mnist")
    splits = split(train, rng, dev=5000, test_set=load_test_set("mnist"))
    refit_on = concat(splits.train, splits.dev)

The package, one role per module:

    dataset.py  the records `Dataset` and `Splits`, class names, `from_pixels`
    csv.py      Kaggle and label-last CSV readers and their validation (pandas, loaded on use)
    idx.py      IDX file and folder readers
    named.py    "mnist" and "fashion-mnist": the `$FNN_DATA` cache, checked downloads
                reporting to a progress callback (urllib, loaded on use)
    load.py     `load_dataset` / `load_test_set`, dispatching on the source; the bundled sample
    split.py    the pure, seeded `split` and `concat`

Every problem with raw input raises `DataError` (from `fnn.errors`), whose message names the
file, the line and column where it applies, what was expected and what was found. The
library prints nothing: downloads report to `progress(bytes_done, bytes_total, file_name)`.
"""

from fnn.data.csv import LAYOUTS, read_csv
from fnn.data.dataset import (
    DIGIT_NAMES,
    FASHION_NAMES,
    IMAGE_SHAPE,
    N_PIXELS,
    Dataset,
    Splits,
    fingerprint,
    from_pixels,
)
from fnn.data.idx import (
    IDX_FILES,
    find_idx_pair,
    read_idx,
    read_idx_folder,
    read_idx_pair,
)
from fnn.data.load import SAMPLE_PATH, load_dataset, load_test_set
from fnn.data.named import (
    DEBIAN_FASHION_DIR,
    FASHION_MIRRORS,
    FASHION_SHA256,
    MNIST_MIRRORS,
    MNIST_SHA256,
    NAMED,
    NamedSource,
    Progress,
    default_data_dir,
)
from fnn.data.split import concat, split
from fnn.errors import DataError

__all__ = [
    "DEBIAN_FASHION_DIR",
    "DIGIT_NAMES",
    "FASHION_MIRRORS",
    "FASHION_NAMES",
    "FASHION_SHA256",
    "IDX_FILES",
    "IMAGE_SHAPE",
    "LAYOUTS",
    "MNIST_MIRRORS",
    "MNIST_SHA256",
    "NAMED",
    "N_PIXELS",
    "SAMPLE_PATH",
    "DataError",
    "Dataset",
    "NamedSource",
    "Progress",
    "Splits",
    "concat",
    "default_data_dir",
    "find_idx_pair",
    "fingerprint",
    "from_pixels",
    "load_dataset",
    "load_test_set",
    "read_csv",
    "read_idx",
    "read_idx_folder",
    "read_idx_pair",
    "split",
]
