"""Hostile input: every reader bounds its work by what the format promises, before allocating.

Three kinds of test:

- bombs — small files that declare, or inflate to, gigabytes (issue 14's cases): one clean
  error naming the file, in process under 2 s and 100 MB of Python/numpy allocations (fast),
  and in a fresh subprocess under `SECONDS` and `PEAK_MB` of resident memory, interpreter and
  pandas included (`VmHWM`; marked slow);
- named model-file mutants (encrypted or exotic zip members, broken `.npy` headers, duplicate
  members, deep or huge metadata): one ModelFileError each;
- seeded mutation fuzzing of small valid CSV, IDX and model files, asserting "a clean
  DataError/ModelFileError, or a load of exactly what the bytes say".

The builders are plain functions of a path, so the same files can be made by hand, e.g.
`cd tests && python -c "import test_hostile as h, pathlib; h.csv_gz_bomb(pathlib.Path('x.csv.gz'))"`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from fnn.data import DataError, load_dataset, read_idx
from fnn.errors import ModelFileError
from fnn.io import load_model, save_model
from fnn.params import init

ROOT = Path(__file__).resolve().parents[1]
PIXELS = [f"pixel{j}" for j in range(784)]
HEADER = ",".join(["label", *PIXELS]) + "\n"
PEAK_MB = 600  # the ceiling for one hostile file, the interpreter and pandas included
SECONDS = 10
GIB = 1 << 30

# ---------------------------------------------------------------- bomb builders


def _crc32_repeated(block: bytes, times: int, crc: int = 0) -> int:
    """`zlib.crc32(block * times, crc)` in milliseconds for any `times`.

    CRC-32 runs a 32-bit register through each byte: r -> M r ^ d, linear over GF(2) but for
    the constant d, so one pass over `block` is an affine map (32 columns of M, and d), read off
    by running `block` from each unit register. Repeating it `times` times is that map raised
    to a power by squaring. zlib keeps the register inverted (~r) between calls.
    """
    mask = 0xFFFFFFFF

    def after_block(register: int) -> int:
        return ~zlib.crc32(block, ~register & mask) & mask

    def apply(columns, shift, register):
        for i, column in enumerate(columns):
            if register >> i & 1:
                shift ^= column
        return shift

    def compose(outer, inner):  # outer(inner(r))
        return [apply(outer[0], 0, c) for c in inner[0]], apply(outer[0], outer[1], inner[1])

    d = after_block(0)
    power, result = ([after_block(1 << i) ^ d for i in range(32)], d), ([1 << i for i in range(32)], 0)
    while times:
        if times & 1:
            result = compose(power, result)
        power, times = compose(power, power), times >> 1
    return ~apply(*result, ~crc & mask) & mask


def _deflate_repeated(block: bytes, times: int) -> tuple[bytes, int, int]:
    """(raw deflate stream, CRC-32, length) of `block` repeated `times` times, built in
    milliseconds: after a full flush the compressor starts afresh, so each repetition
    compresses to the same bytes and one compressed piece can be repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    return piece * times + compressor.flush(), _crc32_repeated(block, times), len(block) * times


def _gzip_of(head: bytes, block: bytes, times: int) -> bytes:
    """A gzip file of `head` followed by `block` repeated `times` times, as two members (gzip
    readers read concatenated members as one stream)."""
    body, crc, size = _deflate_repeated(block, times)
    second = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size & 0xFFFFFFFF)
    return gzip.compress(head, mtime=0) + second


def csv_wide_row(path: Path, fields: int = 1_000_000) -> Path:
    """A Kaggle CSV whose first data row has `fields` fields: 2 MB for a million."""
    path.write_bytes(HEADER.encode() + b"0," * (fields - 1) + b"0\n")
    return path


def csv_gz_bomb(path: Path, inflated: int = GIB) -> Path:
    """A `.csv.gz` of about 1 MB: the Kaggle header, then one line of `inflated` / 2 fields."""
    path.write_bytes(_gzip_of(HEADER.encode(), b"0," * (1 << 19), inflated >> 20))
    return path


def csv_gz_endless_cell(path: Path, inflated: int = GIB) -> Path:
    """A `.csv.gz`: the Kaggle header, then `inflated` bytes of "0" without a comma or line end."""
    path.write_bytes(_gzip_of(HEADER.encode(), b"0" * (1 << 20), inflated >> 20))
    return path


def csv_late_wide_row(path: Path, rows: int = 100, fields: int = 1_000_000) -> Path:
    """A valid Kaggle CSV of `rows` rows, then one row of `fields` fields."""
    good = ("0," * 784 + "0\n").encode()
    path.write_bytes(HEADER.encode() + good * rows + b"0," * (fields - 1) + b"0\n")
    return path


def idx_header(shape) -> bytes:
    return bytes([0, 0, 8, len(shape)]) + np.array(shape, dtype=">u4").tobytes()


def idx_gz_bomb(path: Path, inflated: int = GIB) -> Path:
    """A gzipped IDX file of about 1 MB: a valid header for 10 images, then `inflated` zero bytes."""
    path.write_bytes(_gzip_of(idx_header((10, 28, 28)), bytes(1 << 20), inflated >> 20))
    return path


def idx_many_dims(path: Path, ndim: int = 200) -> Path:
    path.write_bytes(idx_header((1,) * ndim) + b"\0")
    return path


def idx_huge_declared(path: Path, gz: bool = False) -> Path:
    """An IDX header declaring 2**31 images of 28x28 (1.7 TB), followed by one image."""
    data = idx_header((2**31, 28, 28)) + bytes(784)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def valid_model(path: Path, sizes=(784, 16, 10)) -> Path:
    return save_model(path, init(np.random.default_rng(0), sizes))


def npy_header(shape, descr: str = "<f4") -> bytes:
    """A version 1.0 `.npy` header (magic, version, length, dict) for `shape`, as numpy writes it."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _members(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def _zip(path: Path, members, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def _zip_with_deflated_member(path: Path, members, name: str, head: bytes, block: bytes, times: int) -> Path:
    """Write `members` (stored) and last one deflated member `name` = `head` + `block` * `times`,
    its stream built by `_deflate_repeated` (zipfile itself would take seconds per GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body, _, size = _deflate_repeated(block, times)
    crc = _crc32_repeated(block, times, zlib.crc32(head))  # of head, then the blocks
    stream = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH) + body
    entries = [(n, zipfile.ZIP_STORED, data, len(data), zlib.crc32(data)) for n, data in members]
    return _raw_zip(path, [*entries, (name, zipfile.ZIP_DEFLATED, stream, len(head) + size, crc)])


def _raw_zip(path: Path, entries) -> Path:
    """A zip file of `entries`: (name, method, bytes as stored, uncompressed size, CRC-32)."""
    out, central = io.BytesIO(), []
    for name, method, raw, size, crc in entries:
        offset, fname = out.tell(), name.encode()
        zip64 = max(size, len(raw)) >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(raw)) if zip64 else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (len(raw), size)
        version = 45 if zip64 else 20
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", version, 0, method, 0, 0x21, crc,
                              *sizes, len(fname), len(extra)) + fname + extra + raw)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", version, version, 0, method, 0, 0x21,
                                   crc, *sizes, len(fname), len(extra), 0, 0, 0, 0, offset) + fname + extra)
    start, directory = out.tell(), b"".join(central)
    out.write(directory + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                                      len(directory), start, 0))
    path.write_bytes(out.getvalue())
    return path


def npz_member_bomb(path: Path, inflated: int = GIB) -> Path:
    """A valid model whose `layers.0.W.npy` has its own header, then `inflated` zero bytes
    (deflated to about 1 MB): the zip says the member is that large."""
    members = dict(_members(valid_model(path)))
    head = members.pop("layers.0.W.npy")[:128]
    return _zip_with_deflated_member(path, members.items(), "layers.0.W.npy", head, bytes(1 << 20), inflated >> 20)


def npz_consistent_bomb(path: Path) -> Path:
    """`layers.0.W.npy` declaring (32768, 16384) float32 (2 GiB), as its zip member does, while
    the metadata says (784, 16)."""
    members = dict(_members(valid_model(path)))
    del members["layers.0.W.npy"]
    head = npy_header((32768, 16384))
    return _zip_with_deflated_member(path, members.items(), "layers.0.W.npy", head, bytes(1 << 20), 2048)


def npy_huge_header(path: Path) -> Path:
    """A 1 KB model whose `layers.0.W.npy` header declares (2**20, 2**20) float32 (4 TiB) and
    nothing follows."""
    members = dict(_members(valid_model(path)))
    members["layers.0.W.npy"] = npy_header((2**20, 2**20))
    return _zip(path, members.items())


def metadata_deep(path: Path, depth: int = 700_000) -> Path:
    """A model whose metadata.json is 1.4 MB of nested lists."""
    members = dict(_members(valid_model(path)))
    text = "[" * depth + "]" * depth
    members["metadata.json.npy"] = _npy_bytes(np.array(text))
    return _zip(path, members.items(), zipfile.ZIP_DEFLATED)


def metadata_bomb(path: Path, inflated: int = GIB) -> Path:
    """A model whose metadata.json header declares `inflated` bytes of text (zeros, deflated)."""
    members = dict(_members(valid_model(path)))
    del members["metadata.json.npy"]
    head = npy_header((), descr=f"<U{inflated // 4}")
    return _zip_with_deflated_member(path, members.items(), "metadata.json.npy", head, bytes(1 << 20), inflated >> 20)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A 1x1 grey PNG whose header is edited to declare width x height (about 70 bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------- measuring in a subprocess

_CHILD = """
import json, resource, sys, time
limit = int(sys.argv[3])  # address space, set here rather than by preexec_fn (unsafe with threads)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
start = time.perf_counter()
kind, path = sys.argv[1], sys.argv[2]
from fnn.errors import UserError
try:
    if kind == "data":
        from fnn.data import load_dataset
        load_dataset(path)
    elif kind == "idx":
        from fnn.data import read_idx
        read_idx(path)
    elif kind == "model":
        from fnn.io import load_model
        load_model(path)
    else:
        from fnn.images import load_digit_image
        load_digit_image(path)
    outcome = "loaded"
except UserError as error:
    outcome = "error: " + str(error)
except BaseException as error:
    outcome = "crash: " + type(error).__name__ + ": " + str(error)[:200]
# VmHWM is this process image's own peak: ru_maxrss would carry over the parent's peak at fork
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - start, "outcome": outcome, "peak_mb": peak_kb / 1024}))
"""


def measure(kind: str, path: Path, root: Path = ROOT, limit_s: float = 60, memory_gb: float = 4) -> dict:
    """Load `path` with the reader `kind` ("data", "idx", "model", "image") of the fnn in
    `root`, in a fresh interpreter limited to `memory_gb` of address space; return its wall
    seconds (imports excluded), peak resident MB (imports included) and outcome."""
    env = {**os.environ, "PYTHONPATH": str(root), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path), str(int(memory_gb * GIB))],
                              capture_output=True, text=True, timeout=limit_s, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return {"seconds": limit_s, "outcome": f"timeout after {limit_s} s", "peak_mb": float("nan")}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"seconds": float("nan"), "outcome": f"died (exit {done.returncode}): {done.stderr[-300:]}",
                "peak_mb": float("nan")}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- the bombs, fast: in process

BOMBS = {
    # name: (reader, builder, words the one-line error holds)
    "csv, 2 MB, first row 1M fields": ("data", csv_wide_row, "line 2 has 1,000,000 fields; expected 785"),
    "csv, 20 MB, first row 10M fields": ("data", lambda p: csv_wide_row(p, 10_000_000), "line 2 has more than 32,768 fields in its first 65,536 bytes; expected 785"),
    "csv, 2 MB, row 102 has 1M fields": ("data", csv_late_wide_row, "line 102 has 1,000,000 fields; expected 785"),
    "csv.gz, 1 MB -> a 1 GiB line of fields": ("data", csv_gz_bomb, "line 2 has more than 32,768 fields in its first 65,536 bytes"),
    "csv.gz, 1 MB -> a 1 GiB cell": ("data", csv_gz_endless_cell, "line 2 is longer than 65,536 bytes; expected 785 fields"),
    "idx.gz, 1 MB -> header + 1 GiB of zeros": ("idx", idx_gz_bomb, "i.e. 7,840 bytes of data, but more bytes follow"),
    "idx, 200 dimensions": ("idx", idx_many_dims, "IDX header declares 200 dimensions; fnn reads at most 32"),
    "idx, declares 2**31 x 28 x 28": ("idx", idx_huge_declared, "but 784 bytes follow the 16-byte header"),
    "idx.gz, declares 2**31 x 28 x 28": ("idx", lambda p: idx_huge_declared(p, gz=True), "more than the 2,147,483,648 fnn reads"),
    "npz, 1 MB, W member inflates to 1 GiB": ("model", npz_member_bomb, "layers.0.W declares 1,073,741,952 bytes in the zip, but its .npy header (784, 16) float32 means 50,304"),
    "npz, 2 MB, W header and member 2 GiB": ("model", npz_consistent_bomb, "layers.0.W has shape (32768, 16384) but metadata's layer_sizes [784, 16, 10] give (784, 16)"),
    "npz, 4 KB, W header (2**20, 2**20)": ("model", npy_huge_header, "layers.0.W has shape (1048576, 1048576)"),
    "npz, metadata 1.4 MB of nested lists": ("model", metadata_deep, "metadata.json holds 1,400,000 characters, more than the 1,048,576 fnn reads"),
    "npz, metadata 1 GiB of text": ("model", metadata_bomb, "metadata.json holds 268,435,456 characters"),
    "png, 67 B declaring 20000x20000": ("image", lambda p: png_declaring(p, 20000, 20000), "the image declares 400,000,000 pixels, more than the 50,000,000 fnn reads"),
    "png, 67 B declaring 12000x12000": ("image", lambda p: png_declaring(p, 12000, 12000), "the image declares 12000x12000 = 144,000,000 pixels"),
}
_SUFFIX = {"data": ".csv", "idx": "-idx3-ubyte", "model": ".npz", "image": ".png"}


def _bomb(tmp_path: Path, name: str) -> tuple[str, Path, str]:
    kind, build, words = BOMBS[name]
    suffix = ".csv.gz" if name.startswith("csv.gz") else _SUFFIX[kind] + (".gz" if name.startswith("idx.gz") else "")
    return kind, build(tmp_path / f"bomb{suffix}"), words


def _load(kind: str, path: Path):
    if kind == "data":
        return load_dataset(path)
    if kind == "idx":
        return read_idx(path)
    if kind == "model":
        return load_model(path)
    from fnn.images import load_digit_image

    return load_digit_image(path)


@pytest.mark.parametrize("name", BOMBS)
def test_a_bomb_is_one_clean_error_in_little_time_and_memory(tmp_path, name):
    """In process: the error names the file; numpy and Python allocate under 100 MB (tracemalloc
    sees both; the subprocess test below measures everything) and it takes under 2 s."""
    import tracemalloc

    kind, path, words = _bomb(tmp_path, name)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataError if kind != "model" else ModelFileError) as caught:
            _load(kind, path)
        seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message, message
    assert seconds < 2 and peak < 100 * 2**20, (seconds, peak)


# ---------------------------------------------------------------- the bombs, measured: a subprocess each


@pytest.mark.slow
@pytest.mark.parametrize("name", BOMBS)
def test_a_bomb_fails_under_the_ceiling_in_a_fresh_process(tmp_path, name):
    kind, path, words = _bomb(tmp_path, name)
    result = measure(kind, path)
    assert result["outcome"].startswith(f"error: {path}") and words in result["outcome"], result
    assert result["seconds"] < SECONDS and result["peak_mb"] < PEAK_MB, result


@pytest.mark.slow
def test_the_largest_image_fnn_accepts_stays_under_the_ceiling(tmp_path):
    """A 7000x7000 RGBA PNG (49M pixels, just under `MAX_PIXELS`; 200 KB on disk): decoded,
    shrunk by Pillow and read, in a fresh process. Decoding alone is 196 MB."""
    from PIL import Image, ImageDraw

    from fnn.images import MAX_PIXELS

    side = 7000
    assert side * side <= MAX_PIXELS
    image = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    ImageDraw.Draw(image).line([(3000, 2000), (3500, 5000)], fill=(0, 0, 0, 255), width=300)
    image.save(tmp_path / "big.png", compress_level=1)
    result = measure("image", tmp_path / "big.png")
    assert result["outcome"] == "loaded" and result["peak_mb"] < PEAK_MB, result
    assert result["seconds"] < 3 * SECONDS, result  # decoding 49M pixels; 8 s on a 2-core machine


# ---------------------------------------------------------------- named model-file mutants


def _patch_member_headers(data: bytes, name: str, local_at: int | None, central_at: int | None, value: int) -> bytes:
    """Set a 2-byte field of member `name` in its local header (offset `local_at`) and its
    central directory entry (`central_at`): flags 6/8, method 8/10, version needed 4/6."""
    out = bytearray(data)
    for signature, name_length_at, name_at, at in ((b"PK\x03\x04", 26, 30, local_at), (b"PK\x01\x02", 28, 46, central_at)):
        i = out.find(signature)
        while i >= 0 and at is not None:
            (n,) = struct.unpack_from("<H", out, i + name_length_at)
            if bytes(out[i + name_at : i + name_at + n]) == name.encode():
                struct.pack_into("<H", out, i + at, value)
            i = out.find(signature, i + 4)
    return bytes(out)


def _with_member(path: Path, name: str, data: bytes, keep_old: bool = False) -> Path:
    members = _members(path)
    kept = members if keep_old else [(n, d) for n, d in members if n != name]
    with pytest.warns(UserWarning, match="Duplicate name") if keep_old else _nothing():
        return _zip(path, [*kept, (name, data)])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _metadata_text(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(str(np.load(io.BytesIO(archive.read("metadata.json.npy")))))


def _with_metadata(path: Path, text: str) -> Path:
    return _with_member(path, "metadata.json.npy", _npy_bytes(np.array(text)))


W = "layers.0.W.npy"
MODEL_MUTANTS = {
    # name: (change the valid file at path, words of the error)
    "encrypted flag": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 6, 8, 1)), "zip member 'layers.0.W.npy' is encrypted"),
    "strong encryption flag": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 6, 8, 0x41)), "is encrypted"),
    "deflate64 (method 9)": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 8, 10, 9)), "compressed with method 9; fnn reads only stored or deflated"),
    "bzip2 (method 12)": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 8, 10, 12)), "compressed with method 12"),
    "lzma (method 14)": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 8, 10, 14)), "compressed with method 14"),
    "version needed 9.9": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 4, 6, 99)), "uses a zip feature fnn cannot read (zip file version 9.9)"),
    "patched-data flag": (lambda p: p.write_bytes(_patch_member_headers(p.read_bytes(), W, 6, 8, 0x20)), "uses a zip feature fnn cannot read"),
    "duplicate member": (lambda p: _with_member(p, W, _npy_bytes(np.zeros((784, 16), np.float32)), keep_old=True), "holds two zip members named 'layers.0.W.npy'"),
    "metadata not .npy": (lambda p: _zip(p, [(n.removesuffix(".npy") if n.startswith("metadata") else n, d) for n, d in _members(p)]), "zip member 'metadata.json' is not a .npy array"),
    "member not .npy": (lambda p: _with_member(p, W, b"just some text, not an array"), "layers.0.W is not a .npy array (it does not start with the .npy magic bytes)"),
    "header cut in its dict": (lambda p: _with_member(p, W, npy_header((784, 16))[:40] + b" " * 87 + b"\n"), "layers.0.W has a broken .npy header"),
    "header of unbalanced tokens": (lambda p: _with_member(p, W, npy_header((784, 16)).replace(b"(784, 16)", b"(784, 16\"")), "layers.0.W has a broken .npy header"),
    "header of nested parentheses": (lambda p: _with_member(p, W, b"\x93NUMPY\x01\x00" + struct.pack("<H", 9000) + b"(" * 8999 + b"\n"), "layers.0.W has a broken .npy header"),
    "header not a dict": (lambda p: _with_member(p, W, npy_header((784, 16)).replace(b"{'descr'", b"['descr'").replace(b", }", b", ]")), "layers.0.W has a broken .npy header"),
    "header 60,000 bytes": (lambda p: _with_member(p, W, b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b" " * 60000), "has a .npy header of 60,000 bytes"),
    "header version 3.0": (lambda p: _with_member(p, W, npy_header((784, 16)).replace(b"\x01\x00", b"\x03\x00", 1)), "is a .npy of version 3.0"),
    "header of a negative shape": (lambda p: _with_member(p, W, npy_header((-784, 16)) + bytes(16)), "layers.0.W has a .npy header with shape (-784, 16)"),
    "structured dtype": (lambda p: _with_member(p, W, _npy_bytes(np.zeros((784, 16), [("a", "<f4")]))), "layers.0.W has dtype [('a', '<f4')] but metadata says float32"),
    "object dtype": (lambda p: _with_member(p, W, _npy_bytes(np.array([None, 1], dtype=object))), "holds pickled Python objects"),
    "big-endian floats": (lambda p: _with_member(p, W, _npy_bytes(np.zeros((784, 16), ">f4"))), "layers.0.W has dtype >f4 but metadata says float32"),
    "data cut short": (lambda p: _with_member(p, W, _npy_bytes(np.zeros((784, 16), np.float32))[:-4]), "layers.0.W declares 50,300 bytes in the zip, but its .npy header (784, 16) float32 means 50,304"),
    "data beyond the header's": (lambda p: _with_member(p, W, _npy_bytes(np.zeros((784, 16), np.float32)) + b"\0" * 4), "declares 50,308 bytes in the zip"),
    "metadata 40 deep": (lambda p: _with_metadata(p, json.dumps({**_metadata_text(p), "x": json.loads("[" * 40 + "]" * 40)})), "metadata.json nests lists or objects more than 32 deep"),
    "metadata 100,000 deep": (lambda p: _with_metadata(p, "[" * 100_000 + "]" * 100_000), "metadata.json nests lists or objects more than 32 deep"),
    "metadata with a 5000-digit integer": (lambda p: _with_metadata(p, json.dumps({**_metadata_text(p), "format_version": 0}).replace('"format_version": 0', '"format_version": ' + "9" * 5000)), "metadata.json is not valid JSON"),
    "metadata a 2-d array": (lambda p: _with_member(p, "metadata.json.npy", _npy_bytes(np.array([["{}"]]))), "metadata.json should be a 0-d text array"),
    "metadata bytes, not text": (lambda p: _with_member(p, "metadata.json.npy", _npy_bytes(np.array(b"{}"))), "metadata.json should be a 0-d text array, got dtype |S2"),
    "metadata of invalid code points": (lambda p: _with_member(p, "metadata.json.npy", npy_header((), "<U2") + b"\xff\xff\xff\xff" * 2), "metadata.json"),
    "11,000 members": (lambda p: _zip(p, [*_members(p), *((f"x{j}.npy", b"") for j in range(11_000))]), "holds 11,005 zip members; a model file has one per array, at most 10,000"),
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if "members" in name else name for name in MODEL_MUTANTS]
)
def test_a_tampered_model_file_is_one_model_file_error(tmp_path, name):
    change, words = MODEL_MUTANTS[name]
    path = valid_model(tmp_path / "m.npz")
    change(path)
    start = time.perf_counter()
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and len(message) < 400 and message.isprintable(), message
    assert time.perf_counter() - start < 2



# ---------------------------------------------------------------- seeded mutation fuzzing

INTERESTING = b"0123456789,,,\n\n\r\"#. -+eE\t\x00\xff"


def _mutate(rng: np.random.Generator, data: bytes, interesting: bytes = INTERESTING) -> tuple[bytes, str]:
    """One or two random edits of `data`: put another digit for a digit, replace, insert, delete
    or flip a byte, duplicate or drop a span, truncate, or append; returns the result and a
    description for the failure message."""
    out, done = bytearray(data), []
    for _ in range(int(rng.integers(1, 3))):
        at = int(rng.integers(0, len(out) + 1))
        kind = rng.choice(["digit", "digit", "digit", "replace", "insert", "delete", "duplicate", "drop", "truncate",
                           "append", "flip"])
        if kind == "digit":  # another digit for a digit: still a well-formed file, most of the time
            digits = [i for i in range(max(0, at - 8), min(len(out), at + 8)) if 48 <= out[i] <= 57]
            if digits:
                out[digits[0]] = int(rng.integers(48, 58))
        elif kind == "replace" and at < len(out):
            out[at] = interesting[rng.integers(len(interesting))]
        elif kind == "insert":
            out[at:at] = bytes([interesting[rng.integers(len(interesting))]])
        elif kind == "delete":
            del out[at : at + 1]
        elif kind == "duplicate":
            out[at:at] = out[at : at + int(rng.integers(1, 4000))]
        elif kind == "drop":
            del out[at : at + int(rng.integers(1, 4000))]
        elif kind == "truncate":
            del out[at:]
        elif kind == "append":
            out += bytes(rng.choice(list(interesting), size=int(rng.integers(1, 50))).tolist())
        elif kind == "flip" and at < len(out):
            out[at] ^= 1 << int(rng.integers(8))
        done.append(f"{kind}@{at}")
    return bytes(out), ", ".join(done)


def _strict_csv(text: str, label_first: bool) -> np.ndarray | None:
    """The (n, 785) values of a Kaggle text every reader must accept, or None when the text is
    not in that plain form: the exact header, lines of 785 plain integers in range, blank lines
    only at the end."""
    lines = text.split("\n")
    if lines[0] != HEADER.rstrip("\n"):
        return None
    body = lines[1:]
    while body and not body[-1].strip(" \t\r"):
        body.pop()
    rows = []
    for line in body:
        cells = line.split(",")
        if len(cells) != 785 or not all(re.fullmatch(r"[0-9]+", c) for c in cells):
            return None
        rows.append([int(c) for c in cells])
    table = np.array(rows, dtype=np.int64).reshape(-1, 785)
    if not len(table) or (table[:, 0] > 9).any() or (table[:, 1:] > 255).any():
        return None
    return table


def _lenient_csv(text: str) -> np.ndarray | None:
    """What the cells of a text say as numbers, read as leniently as any reader may: the csv
    module's quoting, surrounding blanks dropped, any spelling Python's float reads."""
    lines = text.lstrip("\ufeff").split("\n")[1:]
    while lines and not lines[-1].strip(" \t\r"):
        lines.pop()
    try:
        rows = [[float(cell) for cell in next(csv.reader([line.rstrip("\r")]))] for line in lines]
        return np.array(rows, dtype=np.float64)
    except (ValueError, StopIteration):
        return None


@pytest.mark.slow
@pytest.mark.parametrize("gz", [False, True])
def test_mutated_csvs_give_a_clean_error_or_exactly_what_they_say(tmp_path, gz):
    rng = np.random.default_rng(20240 + gz)
    pixels, labels = rng.integers(0, 256, (3, 784)), rng.integers(0, 10, 3)
    rows = np.column_stack([labels, pixels])
    valid = (HEADER + "".join(",".join(map(str, row)) + "\n" for row in rows.tolist())).encode()
    outcomes = {"error": 0, "loaded": 0}
    for trial in range(150):
        data, edits = _mutate(rng, valid)
        path = tmp_path / f"m{trial}.csv{'.gz' * gz}"
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
        text = data.decode("utf-8", errors="replace")
        strict = _strict_csv(text, label_first=True)
        try:
            ds = load_dataset(path)
        except DataError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error), (edits, str(error))
            assert strict is None, (edits, "a plain valid file was refused", str(error))
            outcomes["error"] += 1
            continue
        loaded = np.column_stack([ds.y, np.rint(ds.X * 255)])
        said = _lenient_csv(text)
        assert said is not None and np.array_equal(loaded, said), (edits, "loaded values the text does not say")
        outcomes["loaded"] += 1
    assert outcomes["error"] > 10 and outcomes["loaded"] > 10, outcomes  # the fuzzing reached both ends


def _strict_idx(data: bytes) -> np.ndarray | None:
    """The array an IDX byte string holds, by the format's definition, or None."""
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or not 1 <= data[3] <= 32:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape, dtype=object)):
        return None
    return np.frombuffer(body, np.uint8).reshape(shape)


@pytest.mark.slow
@pytest.mark.parametrize("gz", [False, True])
def test_mutated_idx_files_give_a_clean_error_or_exactly_what_they_say(tmp_path, gz):
    rng = np.random.default_rng(31337 + gz)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    valid = idx_header(images.shape) + images.tobytes()
    outcomes = {"error": 0, "loaded": 0}
    for trial in range(300):
        data, edits = _mutate(rng, valid, interesting=bytes(range(0, 256, 7)) + b"\x00\x00\x00\x08\xff")
        stored = gzip.compress(data, mtime=0) if gz else data
        if gz and trial % 3 == 0:  # also break the gzip container itself
            stored, edits = _mutate(rng, stored)
        path = tmp_path / f"m{trial}-idx3-ubyte"
        path.write_bytes(stored)
        try:
            array = read_idx(path)
        except DataError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error), (edits, str(error))
            if not (gz and trial % 3 == 0):
                assert _strict_idx(data) is None, (edits, "a valid IDX file was refused", str(error))
            outcomes["error"] += 1
            continue
        if gz and trial % 3 == 0:  # a broken container may only load as what it decompresses to
            data = gzip.decompress(stored) if stored[:2] == b"\x1f\x8b" else stored
        expected = _strict_idx(data)
        assert expected is not None and np.array_equal(array, expected), (edits, "loaded what the bytes do not say")
        outcomes["loaded"] += 1
    assert outcomes["error"] > 10 and outcomes["loaded"] > 10, outcomes


@pytest.mark.slow
def test_mutated_model_files_give_a_clean_error_or_the_model_saved(tmp_path):
    rng = np.random.default_rng(4242)
    params = init(rng, (12, 5, 3))
    source = save_model(tmp_path / "valid.npz", params, {"class_names": ["a", "b", "c"]})
    valid = source.read_bytes()
    saved_meta = load_model(source)[1]
    outcomes = {"error": 0, "loaded": 0}
    for trial in range(300):
        data, edits = _mutate(rng, valid, interesting=bytes(range(256)))
        path = tmp_path / f"m{trial}.npz"
        path.write_bytes(data)
        try:
            loaded, meta = load_model(path)
        except ModelFileError as error:
            message = str(error)
            assert message.startswith(str(path)) and len(message) < 400 and message.isprintable(), (edits, message)
            outcomes["error"] += 1
            continue
        pairs = zip(loaded.layers, params.layers, strict=True)
        assert all(type(a) is type(b) for a, b in pairs), edits
        assert all(np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
                   for a, b in zip(loaded.layers, params.layers) if hasattr(a, "W")), edits
        assert meta == saved_meta, edits
        outcomes["loaded"] += 1
    assert outcomes["error"] > 10, outcomes


_JSON_VALUES = [None, True, False, 0, -1, 1, 3, 2**70, 1e308, -0.0, "", "x", "float32", "float64", "fnn-model",
                [], {}, [1], [784, 16, 10], [0, 10], ["Dense"], [{"type": "Dense"}], [{"type": "Relu"}],
                {"type": "Dense"}, "\x1b[2J", "\ud800", ["\x1b[31m"] * 10, list("0123456789"), [[[[]]]]]


@pytest.mark.slow
def test_metadata_with_random_values_gives_a_clean_error_or_a_checked_model(tmp_path):
    """Every metadata key of a valid file set to values of every JSON type, one or two at a time."""
    rng = np.random.default_rng(7)
    params = init(rng, (6, 4, 3))
    source = save_model(tmp_path / "valid.npz", params)
    members = dict(_members(source))
    meta = _metadata_text(source)
    keys = sorted(meta) + ["layers.0", "layers.1.type", "layers.1.alpha"]
    for trial in range(200):
        changed = json.loads(json.dumps(meta))
        edits = []
        for key in rng.choice(keys, size=int(rng.integers(1, 3))):
            value = _JSON_VALUES[rng.integers(len(_JSON_VALUES))]
            if key.startswith("layers.") and isinstance(changed.get("layers"), list) and len(changed["layers"]) > 1:
                _, j, *field = key.split(".")
                if field and isinstance(changed["layers"][int(j)], dict):
                    changed["layers"][int(j)][field[0]] = value
                elif not field:
                    changed["layers"][int(j)] = value
            elif not key.startswith("layers."):
                changed[key] = value
            edits.append(f"{key}={value!r}")
        path = _zip(tmp_path / f"m{trial}.npz",
                    [*((n, d) for n, d in members.items() if n != "metadata.json.npy"),
                     ("metadata.json.npy", _npy_bytes(np.array(json.dumps(changed))))])
        try:
            loaded, loaded_meta = load_model(path)
        except ModelFileError as error:
            message = str(error)
            assert message.startswith(str(path)) and len(message) < 400 and message.isprintable(), (edits, message)
            continue
        names = loaded_meta["class_names"]
        assert len(names) == 3 and all(name.isprintable() and 1 <= len(name) <= 64 for name in names), edits
        assert all(np.array_equal(a.W, b.W) for a, b in zip(loaded.layers, params.layers) if hasattr(a, "W")), edits


# ---------------------------------------------------------------- settings that overflow, outputs that are not numbers


def leaky_model(path: Path, alpha: float = 0.01, scale: float = 0.01) -> Path:
    """784 -> 16 -> LeakyRelu(alpha) -> 10, weights `scale` times a seeded normal draw."""
    import fnn

    rng = np.random.default_rng(0)
    dense = lambda n, k: fnn.Dense((scale * rng.standard_normal((n, k))).astype(np.float32), np.zeros(k, np.float32))  # noqa: E731
    return save_model(path, fnn.Network((dense(784, 16), fnn.LeakyRelu(alpha), dense(16, 10))))


@pytest.mark.parametrize("alpha", [1e38, 1e308, -0.5, 1.0])
def test_a_leaky_relu_slope_outside_0_to_1_in_a_model_file_is_refused_in_one_line(tmp_path, capsys, alpha):
    """alpha = 1e38 is finite in float32, but alpha * A overflows for any A < -3.4: NaN probabilities."""
    from fnn.cli import main

    path = leaky_model(tmp_path / "m.npz")
    meta = _metadata_text(path)
    meta["layers"][1]["alpha"] = alpha
    _with_metadata(path, json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"layer 1 \(LeakyRelu\) cannot be rebuilt .*alpha.*\[0, 1\)") as caught:
        load_model(path)
    assert str(caught.value).startswith(str(path))
    status = main(["predict", "--model", str(path), "--data", "sample", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and str(path) in err[0] and "alpha" in err[0], err
    assert not (tmp_path / "s.csv").exists()


def test_predict_and_evaluate_refuse_a_model_whose_output_is_not_a_number(tmp_path, capsys):
    """Finite float32 weights of 3e38 overflow in the first product: predict must not write label
    0 for every row, nor evaluate print a traceback; both name the model file."""
    from fnn.cli import main

    path = leaky_model(tmp_path / "m.npz", scale=3e38 / 5)  # 5 sigma: still finite, as the loader checks
    load_model(path)  # the file itself is sound
    out = tmp_path / "s.csv"
    status = main(["predict", "--model", str(path), "--data", "sample", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith(f"fnn: error: {path}: the model's output is not a number"), err
    assert not out.exists()
    status = main(["evaluate", "--model", str(path), "--data", "sample", "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "not a number" in err[0] and str(path) in err[0], err
    assert not (tmp_path / "ev").exists()
