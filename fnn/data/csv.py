"""CSV readers: the Kaggle layout (recognised by its header) and headerless label-last files.

A Kaggle `train.csv` has the header `label,pixel0..pixel783`, a Kaggle `test.csv` the header
`pixel0..pixel783` and no labels. A headerless CSV with the label in the LAST column
(`mnist_5k.csv.gz`) loads only when asked for with `layout="label-last"`; nothing is guessed
silently. Files may be gzipped (`.csv.gz`).

Every problem raises `DataError` naming the file, the line and column, what was expected and
what was found. Line numbers count physical lines of the file from 1, the header line
included, so the first data row of a Kaggle CSV is line 2 and the first row of a headerless
CSV is line 1 (as an editor shows them).

The work is bounded by what the format promises before anything is allocated: the file is
read in blocks of about `BLOCK_BYTES` of whole lines, and each block's lines are measured
(at most `MAX_LINE_BYTES`) and their fields counted with numpy before pandas parses the
block (`fnn.data.cells`). A line of a million fields, or a small `.csv.gz` that inflates to
gigabytes, fails with one DataError in the time and memory of one block; a FIFO or device is
refused before it is opened.

pandas is imported by the reader itself, so importing this module stays cheap.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fnn.checks import one_of
from fnn.data.cells import describe, fields_of, parse_block
from fnn.data.dataset import DIGIT_NAMES, N_PIXELS, Dataset, from_pixels
from fnn.errors import DataError

LAYOUTS = ("kaggle", "label-last")
MAX_LINE_BYTES = 1 << 16  # a line of 785 values takes about 3 KB; "255.0" cells, 5 KB
BLOCK_BYTES = 1 << 22  # lines are checked, then parsed, about 4 MiB of text at a time


def is_csv(path: Path) -> bool:
    """Whether `path`'s name ends in `.csv` or `.csv.gz`, in any case (`TRAIN.CSV` too): how a
    CSV source is recognised."""
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def read_csv(path: str | os.PathLike, *, layout: str = "kaggle") -> Dataset:
    """Read a Kaggle (`layout="kaggle"`) or headerless label-last CSV, plain or gzipped.

    Pixels must be integers 0..255 and labels integers 0..9 (integer-valued text such as
    "255.0" is accepted; "1e2" and "0.5" are not), every line the same number of fields;
    anything else raises `DataError` naming the file, line and column. Blank lines may only end
    the file. A Kaggle file without a label column (`test.csv`) gives `y=None`.

    The file is read in blocks of `BLOCK_BYTES` whole lines, and each block's lines are counted
    and measured before pandas parses it, so a hostile file (a line of a million fields, a
    small `.csv.gz` that inflates to gigabytes) fails in the time and memory of one block.
    """
    path = Path(path)
    one_of("layout", layout, LAYOUTS)
    _check_regular_file(path)
    with _open_binary(path) as stream:
        first = _read(path, lambda: stream.readline(MAX_LINE_BYTES + 1)).removeprefix(b"\xef\xbb\xbf")
        if not first:
            raise DataError(f"{path}: file is empty; expected a CSV of {N_PIXELS} pixels per line")
        if not first.strip():
            raise DataError(
                f"{path}: line 1 is blank; expected the header 'label,pixel0,...,pixel783' (or, "
                f"with layout='label-last', {N_PIXELS + 1} values)"
            )
        if _cr_only(first):
            raise _cr_only_error(path)
        if len(first) > MAX_LINE_BYTES:
            raise DataError(
                f"{path}: line 1 is longer than {MAX_LINE_BYTES:,} bytes; expected the header "
                f"'label,pixel0,...,pixel783' (or, with layout='label-last', 785 values)"
            )
        text = first.decode("utf-8", errors="replace").rstrip("\r\n")
        fields = [f.strip().strip('"') for f in text.split(",")]
        if layout == "kaggle":
            columns, head, first_line = _kaggle_columns(path, fields), b"", 2
        else:
            if any(_looks_like_header(f) for f in fields):
                raise DataError(
                    f"{path}: line 1 is a header ({text[:60]!r}...), but layout='label-last' "
                    f"files have none; drop layout= to read the Kaggle layout"
                )
            columns, head, first_line = tuple(f"pixel{j}" for j in range(N_PIXELS)) + ("label",), first, 1
        values = _read_uint8_table(path, stream, head, first_line, columns)
    if "label" in columns:
        at = columns.index("label")
        pixels, y = np.delete(values, at, axis=1), values[:, at].astype(np.int64)
    else:
        pixels, y = values, None
    return from_pixels(pixels, y, DIGIT_NAMES, str(path))


def _check_regular_file(path: Path) -> None:
    """DataError unless `path` is a regular file (a FIFO would block, /dev/zero never ends)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: not a regular file (a directory, FIFO, device or socket); expected a CSV file")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _gzipped(path) else open(path, "rb")


def _read(path: Path, read):
    """`read()` on the file's stream, a gzip or disk problem turned into a DataError naming the file."""
    try:
        return read()
    except (EOFError, OSError, zlib.error) as error:
        if _gzipped(path):
            raise DataError(f"{path}: gzip data is truncated or corrupt ({error})") from None
        raise DataError(f"{path}: cannot read the file ({error})") from None


def _cr_only(line: bytes) -> bool:
    """Whether a line read up to b"\n" holds a b"\r" that ends no line: the file's lines end in
    a lone CR (classic Mac OS, some spreadsheet exports), so the whole file reads as one line."""
    return b"\r" in line.rstrip(b"\r\n")


def _cr_only_error(path: Path) -> DataError:
    return DataError(
        f"{path}: its lines end in a lone carriage return (CR, \\r), which fnn does not read as a line end; "
        f"convert the line endings to \\n (e.g. tr '\\r' '\\n' < {path.name} > fixed.csv) and read that"
    )


def _long_line(path: Path, line: int, start: bytes, n_columns: int) -> DataError:
    """The error for a line longer than `MAX_LINE_BYTES` that begins with `start` (or for lines
    that end in a lone CR, which make one long line)."""
    if _cr_only(start[:MAX_LINE_BYTES]):
        return _cr_only_error(path)
    fields = start[:MAX_LINE_BYTES].count(b",") + 1
    if fields > n_columns:
        found = f"has more than {fields - 1:,} fields in its first {MAX_LINE_BYTES:,} bytes"
    else:
        found = f"is longer than {MAX_LINE_BYTES:,} bytes"
    return DataError(f"{path}: line {line} {found}; expected {n_columns} fields of at most a few digits each")


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
        known, present = set(expected), set(fields)
        missing = [c for c in expected if c not in present]
        extra = [f for f in fields if f not in known]
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
    shown = ", ".join(repr(n[:40]) for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


def _blocks(path: Path, stream, head: bytes, first_line: int, n_columns: int) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, bytes) for consecutive blocks of whole lines of `stream`,
    `head` (bytes already read) first. A block holds about `BLOCK_BYTES`; a line that runs
    past `MAX_LINE_BYTES` without a line end raises DataError as soon as it does."""
    pending, line = head, first_line
    while True:
        chunk = _read(path, lambda: stream.read(BLOCK_BYTES))
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        block, pending = data[:cut], data[cut:]
        if len(pending) > MAX_LINE_BYTES:
            raise _long_line(path, line + block.count(b"\n"), pending, n_columns)
        if block:
            yield line, block
            line += block.count(b"\n")
    if pending:
        yield line, pending


def _line_table(block: bytes) -> tuple[np.ndarray, ...]:
    """(starts, ends, fields, blank, lone_cr, comment) of the block's lines, vectorised over
    its bytes: ends exclude the b"\n"; fields counts commas + 1; blank: only spaces, tabs and
    b"\r"; lone_cr: holds a b"\r" not followed by b"\n"; comment: starts with "#"."""
    a = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(a == ord("\n"))
    if not block.endswith(b"\n"):
        ends = np.append(ends, a.size)
    starts = np.concatenate([[0], ends[:-1] + 1])

    def per_line(positions: np.ndarray) -> np.ndarray:  # how many of the sorted positions each line holds
        return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)

    fields = per_line(np.flatnonzero(a == ord(","))) + 1
    blank = per_line(np.flatnonzero((a == ord(" ")) | (a == ord("\t")) | (a == ord("\r")))) == ends - starts
    lone_cr = np.zeros(len(ends), dtype=bool)
    lone_cr[np.searchsorted(ends, np.flatnonzero((a[:-1] == ord("\r")) & (a[1:] != ord("\n"))))] = True
    comment = (ends > starts) & (a[np.minimum(starts, a.size - 1)] == ord("#"))
    return starts, ends, fields, blank, lone_cr, comment


def _check_lines(path: Path, block: bytes, first_line: int, columns: tuple[str, ...], blank_before: int | None):
    """Check every line of a block for its shape before any parsing; return (the data lines'
    bytes, which drop trailing blank lines, and the first blank line not yet followed by data).

    A line must not be longer than `MAX_LINE_BYTES`, start with "#", be blank with data after
    it, hold a lone b"\r" (pandas would split the line there), or have a field count other
    than len(columns) (counted with the csv module where a line holds quotes, which may
    enclose commas).
    """
    starts, ends, fields, blank, lone_cr, comment = _line_table(block)
    data_lines = np.flatnonzero(~blank)
    if data_lines.size and blank_before is not None:
        raise _blank_line(path, blank_before, len(columns))
    last = data_lines[-1] if data_lines.size else -1
    if b'"' in block:
        for j in np.flatnonzero(fields != len(columns)):
            fields[j] = len(fields_of(block[starts[j]:ends[j]]))
    # the first line with a problem; on one line, the first of these kinds that applies
    kinds = {
        "blank": blank & (np.arange(len(blank)) < last),
        "comment": comment,
        "cr": lone_cr & ~blank,
        "fields": (fields != len(columns)) & ~blank,
        "long": ends - starts > MAX_LINE_BYTES,
    }
    problems = [(int(np.argmax(found)), rank, kind) for rank, (kind, found) in enumerate(kinds.items()) if found.any()]
    if problems:
        j, _, kind = min(problems)
        line = first_line + j
        if kind == "blank":
            raise _blank_line(path, line, len(columns))
        if kind == "long":
            raise _long_line(path, line, block[starts[j]:ends[j]], len(columns))
        text = block[starts[j]:ends[j]].decode("utf-8", errors="replace").rstrip("\r")
        if kind == "cr":
            raise DataError(
                f"{path}: line {line} holds a carriage return (\\r) that does not end it; fnn "
                f"reads lines ending in \\n or \\r\\n"
            )
        if kind == "comment":
            raise DataError(
                f"{path}: line {line} is a comment ({text[:40]!r}); fnn reads CSVs without "
                f"comment lines, so remove it"
            )
        n = int(fields[j])
        raise DataError(
            f"{path}: line {line} has {n:,} field{'s' * (n != 1)}; expected "
            f"{len(columns)} ({describe(columns)})"
        )
    if last + 1 < len(starts):  # blank lines end the block: data may follow in the next one
        blank_before = first_line + last + 1 if blank_before is None else blank_before
    return block[: ends[last] + 1] if last >= 0 else b"", blank_before


def _blank_line(path: Path, line: int, n_columns: int) -> DataError:
    return DataError(
        f"{path}: line {line} is blank; expected {n_columns} fields (blank lines may only end the file)"
    )


def _read_uint8_table(path: Path, stream, head: bytes, first_line: int, columns: tuple[str, ...]) -> np.ndarray:
    """(n, len(columns)) uint8 from the data lines of a CSV stream, block by block."""
    parts, blank_before, line = [], None, first_line
    for line, block in _blocks(path, stream, head, first_line, len(columns)):
        data, blank_before = _check_lines(path, block, line, columns, blank_before)
        if data:
            parts.append(parse_block(path, data, line, columns))
    if not parts:
        raise DataError(f"{path}: no data lines after the header; expected one image per line")
    return np.concatenate(parts) if len(parts) > 1 else parts[0]
