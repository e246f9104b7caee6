"""CSV readers: the Kaggle layout (recognised by its header) and headerless label-last files.

A Kaggle `train.csv` has the header `label,pixel0..pixel783`, a Kaggle `test.csv` the header
`pixel0..pixel783` and no labels. A headerless CSV with the label in the LAST column
(`mnist_5k.csv.gz`) loads only when asked for with `layout="label-last"`; nothing is guessed
silently. Files may be gzipped (`.csv.gz`).

Every problem raises `DataError` naming the file, the line and column, what was expected and
what was found. Line numbers count physical lines of the file from 1, the header line
included, so the first data row of a Kaggle CSV is line 2 and the first row of a headerless
CSV is line 1 (as an editor shows them).

pandas is imported by the reader itself, so importing this module stays cheap.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

import numpy as np

from fnn.checks import one_of
from fnn.data.dataset import DIGIT_NAMES, N_PIXELS, Dataset, from_pixels
from fnn.errors import DataError

LAYOUTS = ("kaggle", "label-last")


def is_csv(path: Path) -> bool:
    """Whether `path`'s name ends in `.csv` or `.csv.gz` (how a CSV source is recognised)."""
    return path.name.endswith((".csv", ".csv.gz"))


def read_csv(path: str | os.PathLike, *, layout: str = "kaggle") -> Dataset:
    """Read a Kaggle (`layout="kaggle"`) or headerless label-last CSV, plain or gzipped.

    Pixels must be integers 0..255 and labels integers 0..9, every line the same number of
    fields; anything else raises `DataError` naming the file, line and column. A Kaggle file
    without a label column (`test.csv`) gives `y=None`.
    """
    path = Path(path)
    one_of("layout", layout, LAYOUTS)
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
    return from_pixels(pixels, y, DIGIT_NAMES, str(path))


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
    import pandas as pd

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
