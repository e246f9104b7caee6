"""One block of CSV lines, already checked for shape by `fnn.data.csv`, to uint8 values.

pandas' C parser does the reading; the checks here catch what it misreads or reports without a
place: text that rounds to an integer ("1e-400"), TRUE/FALSE columns read as 1/0, and, in
pandas 2.0-2.2, uint8 values that wrap ("256" -> 0, "-1" -> 255) and cells cut at a NUL byte.
Every problem is a DataError naming the file, line and column. pandas is imported by
`parse_block` itself, so importing this module stays cheap.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from pathlib import Path

import numpy as np

from fnn.errors import DataError


# an exponent, or a fraction with a non-zero digit: text that is not an integer, whatever
# value a float parser rounds it to ("1e-400" -> 0.0, "255.00000000000000000001" -> 255.0),
# or a NUL byte, where pandas before 3.0 ends the cell ("20\x00" -> 20)
_NOT_INTEGER = re.compile(rb"[eE]|\.[0-9]*[1-9]|\x00")


def parse_block(path: Path, data: bytes, first_line: int, columns: tuple[str, ...]) -> np.ndarray:
    """(lines, len(columns)) uint8 from a block of lines already checked by `fnn.data.csv`,
    via pandas' C parser.

    The fast path asks pandas for uint8 directly, which rejects most non-integers, empty cells
    and values outside 0..255 without saying where. Two scans of the raw bytes follow: for
    letters (any byte from b"A" up), since pandas reads a column of TRUE/FALSE cells as 1/0,
    and, where a dot or letter appears, for `_NOT_INTEGER` text, which a float parser rounds
    to an integer ("1e-400" -> 0, "255.00000000000000000001" -> 255). If any check fails, the
    block is read again with pandas' own type inference, to accept integer-valued cells
    written as floats ("255.0") or to find the first cell (in file order) that is not an
    integer in range.
    """
    import pandas as pd

    options = dict(
        header=None, engine="c", skip_blank_lines=False,
        encoding_errors="replace",  # a stray non-UTF-8 byte becomes a non-numeric cell
    )
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # a failed cast raises below
            frame = pd.read_csv(io.BytesIO(data), dtype=np.uint8, **options)
    except (ValueError, OverflowError):  # pandas' ParserError is a ValueError too
        frame = None
    letters = int(np.frombuffer(data, dtype=np.uint8).max()) >= ord("A")
    not_integer = _NOT_INTEGER.search(data) if letters or b"." in data or b"\x00" in data else None
    wrapped = not _pandas_checks_uint8() and (b"-" in data or _above_255(data))
    if frame is None or letters or not_integer or wrapped:
        try:
            frame = pd.read_csv(io.BytesIO(data), low_memory=False, **options)
        except pd.errors.ParserError as error:  # e.g. a quote left open
            last = first_line + data.count(b"\n", 0, len(data) - 1)
            raise DataError(f"{path}: lines {first_line}-{last} cannot be parsed as CSV ({error})") from None
    if frame.shape[1] != len(columns):  # quotes that pandas reads otherwise than the csv module
        raise DataError(
            f"{path}: a line from {first_line} on has {frame.shape[1]} fields as pandas reads its "
            f"quotes; expected {len(columns)} ({describe(columns)})"
        )
    top = np.array([9 if c == "label" else 255 for c in columns])
    if all(dtype == np.uint8 for dtype in frame.dtypes):
        values = frame.to_numpy()
        bad = values > top
    else:
        # pandas reads a column of only TRUE/FALSE cells as bool, which to_numeric would
        # turn into 1/0: such cells are words, not pixel values (NaN here). Text columns are
        # converted one by one; the numeric rest at once (apply over 785 columns takes 0.5 s).
        words = np.array([pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes])
        text = np.array([not pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes])
        plain = np.flatnonzero(~words & ~text)
        numbers = np.full(frame.shape, np.nan)
        numbers[:, plain] = frame.iloc[:, plain].to_numpy(dtype=np.float64)
        for j in np.flatnonzero(text):
            numbers[:, j] = pd.to_numeric(frame.iloc[:, j], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~(numbers >= 0) | (numbers > top) | (numbers != np.rint(numbers))
        values = numbers
    if not_integer is not None:
        at = not_integer.start()
        line_start = data.rfind(b"\n", 0, at) + 1
        bad[data.count(b"\n", 0, at), data.count(b",", line_start, at)] = True
    if bad.any():
        row, col = divmod(int(np.argmax(bad)), len(columns))
        text = _cell(data, row, col)
        raise DataError(
            f"{path}: line {first_line + row}, column {col + 1} ({columns[col]!r}): "
            f"expected an integer {'label 0..9' if top[col] == 9 else 'pixel value 0..255'}, "
            f"got {repr(text[:40]) if text.strip() else 'an empty cell'}"
        )
    return values.astype(np.uint8, copy=False)


@functools.cache
def _pandas_checks_uint8() -> bool:
    """Whether this pandas refuses "256" and "-1" as uint8; 2.0-2.2 wrap them to 0 and 255."""
    import pandas as pd

    try:
        pd.read_csv(io.BytesIO(b"256,-1\n"), header=None, dtype=np.uint8)
    except (ValueError, OverflowError):
        return True
    return False


def _above_255(data: bytes) -> bool:
    """Whether a run of digits in `data` could read above 255: four digits or more, or three
    above 255. ("0255" counts too; such a block only takes the slower, checked path.)"""
    a = np.frombuffer(data, dtype=np.uint8)
    digit = (a - ord("0")) < 10  # uint8 arithmetic wraps: only b"0".."9" land below 10
    three = digit[:-2] & digit[1:-1] & digit[2:]
    if not three.any():
        return False
    if (three[:-1] & digit[3:]).any():
        return True
    start = np.flatnonzero(three)
    d = a[start[:, None] + np.arange(3)].astype(np.int16) - ord("0")
    return bool((d @ np.array([100, 10, 1], np.int16) > 255).any())


def fields_of(line: bytes) -> list[str]:
    """The fields of one line, quotes removed as the csv module does (split at commas if it
    cannot read the line)."""
    text = line.decode("utf-8", errors="replace").rstrip("\r")
    try:
        return next(csv.reader([text]), [""])
    except csv.Error:
        return text.split(",")


def _cell(data: bytes, row: int, col: int) -> str:
    """The text of cell (row, col) of a block of lines."""
    fields = fields_of(data.split(b"\n", row + 1)[row])
    return fields[col] if col < len(fields) else ""


def describe(columns: tuple[str, ...]) -> str:
    if columns[0] == "label":
        return "label, then pixel0..pixel783"
    if columns[-1] == "label":
        return "784 pixels, then the label"
    return "pixel0..pixel783"
