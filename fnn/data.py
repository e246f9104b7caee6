"""Data: where digits come from, how raw files are checked, and how they are split.

Every source ends up as a `Dataset`:

    X: (n, 784) float32 in [0, 1]   pixels / 255, each 28x28 image flattened row-major
    y: (n,) int64 in 0..9, or None   None only for unlabeled data (Kaggle `test.csv`)

Sources (`load_dataset(source)` returns the training part, or the whole CSV):

- a Kaggle CSV, `.csv` or `.csv.gz`: `train.csv` (header `label,pixel0..pixel783`) or
  `test.csv` (header `pixel0..pixel783`, no labels). The header is how the layout is
  recognised; a headerless CSV with the label in the LAST column (`mnist_5k.csv.gz`) loads
  only when asked for with `layout="label-last"`. Nothing is guessed silently.
- a folder of IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
  `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`), gzipped or raw.
- `"sample"`: 5,000 real MNIST digits (500 per class) shipped inside the package.
- `"mnist"`, `"fashion-mnist"`: the IDX files from the cache directory (`data_dir`, else
  `$FNN_DATA`, else `~/.cache/fnn`), Fashion-MNIST also from Debian's
  `/usr/share/datasets/fashion-mnist/`, else downloaded and checked against SHA-256 sums.

MNIST and Fashion-MNIST come with an official test set. `load_test_set(source)` returns it
(None for CSV files and the sample), and `split(train, rng, dev=..., test_set=...)` keeps it
as the test split:

    train = load_dataset("mnist")
    splits = split(train, rng, dev=5000, test_set=load_test_set("mnist"))

Every problem with raw input raises `DataError`, whose message names the file, the line and
column where it applies, what was expected and what was found. Line numbers count physical
lines of the file from 1, the header line included, so the first data row of a Kaggle CSV is
line 2 and the first row of a headerless CSV is line 1 (as an editor shows them).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import re
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import attrs
import numpy as np
import pandas as pd
from tqdm import tqdm

from fnn.errors import DataError
from fnn.files import atomic_path

N_PIXELS = 784
IMAGE_SHAPE = (28, 28)
DIGIT_NAMES = tuple(str(d) for d in range(10))
FASHION_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
LAYOUTS = ("kaggle", "label-last")
SAMPLE_PATH = Path(__file__).parent / "datasets" / "mnist_sample.npz"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Published SHA-256 sums of the gzipped IDX files, as recorded by TensorFlow Datasets in
# github.com/tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt (commit 31f1255e)
# and tensorflow_datasets/url_checksums/fashion_mnist.txt (commit 333639b3). The MNIST sums
# are the same ones torchvision's mirrors serve (their md5 sums name the same files).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
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


@attrs.frozen
class _Named:
    """A downloadable dataset: its folder name, class names, checksums and mirrors."""

    folder: str
    class_names: tuple[str, ...]
    sha256: dict
    mirrors: tuple[str, ...]
    system_dirs: tuple[Path, ...]


NAMED = {
    "mnist": _Named("mnist", DIGIT_NAMES, MNIST_SHA256, MNIST_MIRRORS, ()),
    # Debian's dataset-fashion-mnist re-gzips the files (same IDX content, different .gz
    # bytes), so files found there are checked by IDX structure, not by the sums above.
    "fashion-mnist": _Named(
        "fashion-mnist", FASHION_NAMES, FASHION_SHA256, FASHION_MIRRORS, (DEBIAN_FASHION_DIR,)
    ),
}


# ---------------------------------------------------------------- entry points


def load_dataset(
    source: str | os.PathLike,
    *,
    layout: str = "kaggle",
    data_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    progress: bool = False,
) -> Dataset:
    """Load the training part of `source` (or the whole of a CSV file) as a `Dataset`.

    source: "sample", "mnist", "fashion-mnist", a `.csv`/`.csv.gz` path or a folder of IDX files.
    layout: CSV layout, "kaggle" (recognised by its header) or "label-last" (no header,
        784 pixels then the label on each line). Only meaningful for CSV files.
    data_dir: cache directory for "mnist"/"fashion-mnist" (default `$FNN_DATA` or
        `~/.cache/fnn`); mirrors: base URLs to download from instead of the published ones;
        progress: show a download progress bar on stderr.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(source, str) and source == "sample":
        _check_no_layout(source, layout)
        return _load_sample()
    if isinstance(source, str) and source in NAMED:
        _check_no_layout(source, layout)
        return _load_named(source, "train", data_dir, mirrors, progress)
    path = _existing_path(source)
    if path.is_dir():
        _check_no_layout(source, layout)
        return _load_idx_pair(path, "train")
    return read_csv(path, layout=layout)


def load_test_set(
    source: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | None = None,
    progress: bool = False,
) -> Dataset | None:
    """The official test set of `source`: the t10k files of "mnist", "fashion-mnist" or an
    IDX folder; None for "sample" and CSV files, which `split` divides themselves.

    Arguments as in `load_dataset`.
    """
    if isinstance(source, str) and source == "sample":
        return None
    if isinstance(source, str) and source in NAMED:
        return _load_named(source, "test", data_dir, mirrors, progress)
    path = _existing_path(source)
    if path.is_dir():
        return _load_idx_pair(path, "test")
    return None


def _check_no_layout(source, layout: str) -> None:
    if layout != "kaggle":
        raise ValueError(f"layout={layout!r} applies to CSV files only, not to source {str(source)!r}")


def _existing_path(source: str | os.PathLike) -> Path:
    path = Path(source)
    if path.is_dir() or (path.is_file() and _is_csv(path)):
        return path
    names = ", ".join(repr(n) for n in ("sample", *NAMED))
    what = "is not a .csv or .csv.gz file" if path.is_file() else "does not exist"
    raise DataError(
        f"data source {str(source)!r} {what}; expected one of {names}, a .csv/.csv.gz file "
        f"(Kaggle layout) or a folder of IDX files"
    )


def _is_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz"))


def _load_sample() -> Dataset:
    """The bundled 5,000-digit MNIST sample (built by scripts/build_sample.py)."""
    with np.load(SAMPLE_PATH, allow_pickle=False) as archive:
        pixels, labels = archive["pixels"], archive["labels"]
    return _dataset(pixels, labels.astype(np.int64), DIGIT_NAMES, "sample")


def _dataset(pixels: np.ndarray, y, class_names, source: str) -> Dataset:
    """pixels: (n, 784) uint8 -> Dataset with X = pixels / 255 as float32 (one allocation)."""
    X = pixels.astype(np.float32)
    X /= 255
    return Dataset(X=X, y=y, class_names=tuple(class_names), source=source)


# ---------------------------------------------------------------- CSV


def read_csv(path: str | os.PathLike, *, layout: str = "kaggle") -> Dataset:
    """Read a Kaggle (`layout="kaggle"`) or headerless label-last CSV, plain or gzipped.

    Pixels must be integers 0..255 and labels integers 0..9, every line the same number of
    fields; anything else raises `DataError` naming the file, line and column. A Kaggle file
    without a label column (`test.csv`) gives `y=None`.
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    first = _first_line(path)
    fields = [f.strip().strip('"') for f in first.split(",")]
    if layout == "kaggle":
        columns = _kaggle_columns(path, fields)
        header_lines = 1
    else:
        if any(_looks_like_header(f) for f in fields):
            raise DataError(
                f"{path}: line 1 is a header ({first[:60]!r}...), but layout='label-last' "
                f"files have none; drop layout= to read the Kaggle layout"
            )
        columns = tuple(f"pixel{j}" for j in range(N_PIXELS)) + ("label",)
        header_lines = 0
    values = _read_uint8_table(path, columns, header_lines)
    if "label" in columns:
        at = columns.index("label")
        pixels, y = np.delete(values, at, axis=1), values[:, at].astype(np.int64)
    else:
        pixels, y = values, None
    return _dataset(pixels, y, DIGIT_NAMES, str(path))


def _first_line(path: Path) -> str:
    """The first line of a plain or gzipped text file, without its line ending or BOM."""
    with _open_text(path) as stream:
        try:
            line = stream.readline(1 << 20)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(f"{path}: gzip data is truncated or corrupt ({error})") from None
    if not line.strip():
        raise DataError(f"{path}: file is empty; expected a CSV of {N_PIXELS} pixels per line")
    return line.lstrip("\ufeff").rstrip("\r\n")


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _looks_like_header(field: str) -> bool:
    return field == "label" or re.fullmatch(r"pixel\d+", field) is not None


def _kaggle_columns(path: Path, fields: list[str]) -> tuple[str, ...]:
    """Check a Kaggle header line and return its column names (label first, if present)."""
    if not any(_looks_like_header(f) for f in fields):
        raise DataError(
            f"{path}: line 1 is not a Kaggle header (expected 'label,pixel0,...,pixel783' "
            f"or 'pixel0,...,pixel783', got {','.join(fields)[:60]!r}...); if the file has "
            f"no header and the label is the last column, pass layout='label-last'"
        )
    pixels = [f"pixel{j}" for j in range(N_PIXELS)]
    expected = ["label", *pixels] if "label" in fields else pixels
    if fields != expected:
        missing = [c for c in expected if c not in fields]
        extra = [f for f in fields if f not in expected]
        problems = [
            *([f"missing columns {_clip(missing)}"] if missing else []),
            *([f"unexpected columns {_clip(extra)}"] if extra else []),
            *([] if missing or extra else ["columns out of order"]),
        ]
        raise DataError(
            f"{path}: line 1 (header): {'; '.join(problems)}; expected "
            f"{'label,' if 'label' in expected else ''}pixel0,...,pixel783 in that order"
        )
    return tuple(expected)


def _clip(names: list[str], k: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def _read_uint8_table(path: Path, columns: tuple[str, ...], header_lines: int) -> np.ndarray:
    """(n, len(columns)) uint8 from the data lines of a CSV, via pandas' C parser.

    The fast path asks pandas for uint8 directly, which rejects non-integers, empty cells and
    values outside 0..255 without saying where; `_has_words` then scans the raw bytes once
    more, since pandas reads a column of TRUE/FALSE cells as 1/0. If either check fails, the
    file is read again with pandas' own type inference, to accept integer-valued cells written
    as floats ("255.0") or to find the first cell (in file order) that is not an integer in
    range.
    """
    options = dict(
        header=None, skiprows=header_lines, engine="c", skip_blank_lines=False,
        encoding_errors="replace",  # a stray non-UTF-8 byte becomes a non-numeric cell
    )
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # a failed cast raises below
            frame = pd.read_csv(path, dtype=np.uint8, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no data lines after the header; expected one image per line") from None
    except pd.errors.ParserError as error:
        raise _field_count_error(path, error, len(columns)) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: gzip data is truncated or corrupt ({error})") from None
    except (ValueError, OverflowError):
        frame = None
    if frame is None or _has_words(path, header_lines):
        frame = pd.read_csv(path, low_memory=False, **options)
    if frame.shape[1] != len(columns):
        raise DataError(
            f"{path}: line {header_lines + 1} has {frame.shape[1]} fields; expected "
            f"{len(columns)} ({_describe(columns)})"
        )
    top = np.array([9 if c == "label" else 255 for c in columns])
    if all(dtype == np.uint8 for dtype in frame.dtypes):
        values = frame.to_numpy()
        bad = values > top
    else:
        numbers = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        # pandas reads a column of only TRUE/FALSE cells as bool, which to_numeric would
        # turn into 1/0: such cells are words, not pixel values.
        words = np.array([pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes])
        bad = ~(numbers >= 0) | (numbers > top) | (numbers != np.rint(numbers)) | words
        values = None if bad.any() else numbers.astype(np.uint8)
    if bad.any():
        row, col = divmod(int(np.argmax(bad)), len(columns))
        cell = pd.read_csv(path, usecols=[col], dtype=str, keep_default_na=False, **options)
        text = cell.iloc[row, 0]
        raise DataError(
            f"{path}: line {header_lines + row + 1}, column {col + 1} ({columns[col]!r}): "
            f"expected an integer {'label 0..9' if top[col] == 9 else 'pixel value 0..255'}, "
            f"got {repr(text) if isinstance(text, str) and text.strip() else 'an empty cell'}"
        )
    return values


def _has_words(path: Path, header_lines: int) -> bool:
    """Whether a letter (any byte from b"A" up) appears after the header.

    pandas' C parser silently reads a column of TRUE/FALSE cells as 1/0 even when asked for
    integers, so such files must take the slow path, which reports the cell. Digits, signs,
    dots, commas, quotes and line ends all sort below b"A".
    """
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as stream:
        for _ in range(header_lines):
            stream.readline()
        body = np.frombuffer(stream.read(), dtype=np.uint8)
    return body.size > 0 and int(body.max()) >= ord("A")


def _describe(columns: tuple[str, ...]) -> str:
    if columns[0] == "label":
        return "label, then pixel0..pixel783"
    if columns[-1] == "label":
        return "784 pixels, then the label"
    return "pixel0..pixel783"


def _field_count_error(path: Path, error: Exception, n_columns: int) -> DataError:
    """Turn pandas' 'Expected a fields in line b, saw c' into a DataError."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if found is None:
        return DataError(f"{path}: cannot parse as CSV ({error})")
    _, line, saw = found.groups()
    return DataError(
        f"{path}: line {line} has {saw} fields; expected {n_columns} like the lines before it"
    )


# ---------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped or raw, told apart by its first bytes) -> uint8 array of its shape.

    Checks the magic number (two zero bytes, type 0x08 for unsigned bytes, the number of
    dimensions) and that the dimensions account for exactly the bytes that follow.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise DataError(f"{path}: gzip data is truncated or corrupt ({error})") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes; expected a magic number "
            f"0x000008NN (NN = number of dimensions), got "
            f"{'0x' + raw[:4].hex() if raw else 'an empty file'}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header needs {header} bytes, file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = math.prod(shape)
    if len(raw) - header != size:
        raise DataError(
            f"{path}: IDX header says shape {shape}, i.e. {size} bytes of data, but "
            f"{len(raw) - header} bytes follow the {header}-byte header"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_path(folder: Path, stem: str) -> Path | None:
    found = [folder / name for name in (stem + ".gz", stem) if (folder / name).is_file()]
    return found[0] if found else None


def _load_idx_pair(folder: Path, part: str) -> Dataset:
    """The images and labels of `part` ("train" or "test") from a folder of IDX files."""
    stems = IDX_FILES[part]
    paths = [_idx_path(folder, stem) for stem in stems]
    if None in paths:
        wanted = " and ".join(f"{s}.gz (or {s})" for s in stems)
        raise DataError(f"{folder}: no {part} files; expected {wanted} in that folder")
    return read_idx_pair(paths[0], paths[1], DIGIT_NAMES, f"{folder} ({part})")


def read_idx_pair(images_path, labels_path, class_names=DIGIT_NAMES, source=None) -> Dataset:
    """An IDX image file (n, 28, 28) and label file (n,) -> Dataset."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: expected images of shape (n, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels of shape (n,), got {labels.shape}")
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}"
        )
    if (labels > 9).any():
        at = int(np.argmax(labels > 9))
        raise DataError(
            f"{labels_path}: label number {at + 1} (of {len(labels)}) is {labels[at]}; expected 0..9"
        )
    pixels = images.reshape(len(images), N_PIXELS)
    return _dataset(pixels, labels.astype(np.int64), class_names, source or str(images_path))


# ---------------------------------------------------------------- named datasets


def default_data_dir() -> Path:
    """`$FNN_DATA`, else `~/.cache/fnn`: where "mnist" and "fashion-mnist" are cached."""
    return Path(os.environ.get("FNN_DATA") or "~/.cache/fnn").expanduser()


def _load_named(name, part, data_dir, mirrors, progress) -> Dataset:
    """`part` of a named dataset: from the cache if its files match their published sums,
    else from a system directory (Debian's Fashion-MNIST), else downloaded into the cache."""
    spec = NAMED[name]
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = folder / spec.folder
    filenames = [stem + ".gz" for stem in IDX_FILES[part]]
    found = _find_in(spec.system_dirs, part)
    if found is not None and not all(_is_cached(spec, folder / f) for f in filenames):
        return read_idx_pair(*found, spec.class_names, f"{name} {part} ({found[0].parent})")
    paths = [
        _fetch(spec, folder, filename, spec.mirrors if mirrors is None else mirrors, progress)
        for filename in filenames
    ]
    return read_idx_pair(*paths, spec.class_names, f"{name} {part} ({folder})")


def _find_in(dirs: tuple[Path, ...], part: str) -> tuple[Path, Path] | None:
    """Both IDX files of `part` from the first system directory holding them, if any."""
    for directory in dirs:
        paths = [_idx_path(directory, stem) for stem in IDX_FILES[part]]
        if None not in paths:
            return paths[0], paths[1]
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_cached(spec: _Named, path: Path) -> bool:
    """Whether path exists with the published SHA-256 of its file name."""
    return path.is_file() and _sha256(path) == spec.sha256[path.name]


def _fetch(spec: _Named, folder: Path, filename: str, mirrors, progress: bool) -> Path:
    """Path of `folder/filename` with the published SHA-256, downloading it if needed.

    A cached file is used only if its checksum matches; a download goes to a temporary file
    in `folder`, is checked, and only then renamed into place, so an interrupted or corrupt
    download never looks cached. Mirrors are tried in order.
    """
    target = folder / filename
    expected = spec.sha256[filename]
    if _is_cached(spec, target):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        problem = _download(base + filename, target, expected, progress)
        if problem is None:
            return target
        failures.append(f"{base + filename}: {problem}")
    stale = (
        f" The file already there, {target}, does not match its SHA-256 {expected}."
        if target.is_file()
        else ""
    )
    files = ", ".join(sorted(spec.sha256))
    raise DataError(
        f"could not download {filename} for {spec.folder}: {'; '.join(failures)}.{stale} "
        f"To work offline, place the four files {files} in {folder} (or point $FNN_DATA at "
        f"a folder with a {spec.folder}/ subfolder holding them), or use --data sample or "
        f"a CSV path instead."
    )


class _DownloadProblem(Exception):
    """A download that arrived but cannot be kept (short, or the wrong checksum)."""


def _download(url: str, target: Path, sha256: str, progress: bool, timeout: float = 60.0):
    """Download url to target atomically; None on success, else what went wrong (str).

    The bytes go to a temporary file beside `target` (`fnn.io.atomic_path`), which replaces
    `target` only once the length and the SHA-256 check out; otherwise it is removed.
    """
    try:
        with atomic_path(target) as temporary, open(temporary, "wb") as out, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest, received = hashlib.sha256(), 0
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name,
                disable=not progress, file=sys.stderr,
            ) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
            if total is not None and received != total:
                raise _DownloadProblem(f"connection closed after {received} of {total} bytes")
            if digest.hexdigest() != sha256:
                raise _DownloadProblem(
                    f"SHA-256 {digest.hexdigest()} does not match the published {sha256}"
                )
        return None
    except _DownloadProblem as problem:
        return str(problem)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- splits


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
    stratify: give each class its share of test (within 2 rows of test·c/n for a class of
        c rows) and of dev (within 3 rows) instead of a plain random draw; needs labels.
    test_set: an official test set (`load_test_set`), returned as `Splits.test` unchanged;
        then `test` must be 0 or None, and dev is carved from `dataset` alone.
    The same generator state gives the same split; train, dev and test keep file order.
    """
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


def _count(name: str, value, n: int) -> int:
    """A split size given as a count or a fraction of n -> a count in 0..n."""
    if value is None:
        return 0
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
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
    ordered by (r + 1/2) / c, so a prefix of length k holds about k·c/n rows of each class.
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
