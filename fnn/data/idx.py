"""IDX readers: the format MNIST and Fashion-MNIST are published in.

An IDX file is a magic number (two zero bytes, a type byte, the number of dimensions), one
big-endian uint32 per dimension, then the data. A folder of IDX files holds a training part
(`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`) and a test part (`t10k-...`), each
file gzipped (`.gz`) or raw. Every problem raises `DataError` naming the file.

The header bounds the work: at most `MAX_IDX_DIMS` dimensions and `MAX_IDX_BYTES` of data are
accepted before anything is allocated, and the stream is read only to the size the header
declares, plus one byte to detect more (so a small `.gz` of a valid header and gigabytes of
zeros fails after that byte).
"""

from __future__ import annotations

import gzip
import math
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from fnn.data.dataset import DIGIT_NAMES, IMAGE_SHAPE, N_PIXELS, Dataset, from_pixels
from fnn.errors import DataError

MAX_IDX_DIMS = 32  # numpy 1.x's limit on dimensions; MNIST's files have 1 and 3
MAX_IDX_BYTES = 1 << 31  # 2 GiB: 40 times MNIST's training images; refused before allocating
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _open_idx(path: Path):
    """(raw file, stream, file size or None if gzipped) of an IDX file, after checking it is a
    regular file; the caller closes the raw file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise DataError(f"{path}: cannot read the IDX file ({error.strerror})") from None
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: not a regular file (a directory, FIFO, device or socket); expected an IDX file")
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    gz = raw.read(2) == b"\x1f\x8b"
    raw.seek(0)
    return raw, gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw, None if gz else os.fstat(raw.fileno()).st_size


def _reading(path: Path, gz: bool, read):
    """read(), its stream errors as DataError naming the file."""
    try:
        return read()
    except (EOFError, OSError, zlib.error) as error:
        if not gz:
            raise DataError(f"{path}: cannot read the IDX file ({error})") from None
        raise DataError(f"{path}: gzip data is truncated or corrupt ({error})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (gzipped or raw, told apart by its first bytes) -> uint8 array of its shape.

    Checks the magic number (two zero bytes, type 0x08 for unsigned bytes, 1 to `MAX_IDX_DIMS`
    dimensions) and that the dimensions account for exactly the bytes that follow. The work is
    bounded by the header: a shape of more than `MAX_IDX_BYTES` is refused before anything is
    allocated, and the stream is read only to the size the header declares, plus one byte to
    detect data beyond it (a small `.gz` that inflates to gigabytes fails after that byte).
    """
    path = Path(path)
    raw, stream, size = _open_idx(path)
    with raw:
        return _reading(path, size is None, lambda: _read_idx_stream(path, stream, size))


def read_idx_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape an IDX file's header declares, reading only the header (at most 132 bytes)."""
    path = Path(path)
    raw, stream, size = _open_idx(path)
    with raw:
        return _reading(path, size is None, lambda: _read_idx_header(path, stream)[0])


def _read_idx_header(path: Path, stream) -> tuple[tuple[int, ...], int]:
    """(shape, header bytes) of the IDX header at the start of `stream`, checked."""
    magic = _read_exactly(stream, 4)
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] == 0:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes; expected a magic number "
            f"0x000008NN (NN = number of dimensions), got "
            f"{'0x' + magic.hex() if magic else 'an empty file'}"
        )
    ndim = magic[3]
    if ndim > MAX_IDX_DIMS:
        raise DataError(
            f"{path}: IDX header declares {ndim} dimensions; fnn reads at most {MAX_IDX_DIMS} "
            f"(MNIST's files have 1 for labels, 3 for images)"
        )
    header = 4 + 4 * ndim
    dims = _read_exactly(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header needs {header} bytes, file has {4 + len(dims)}")
    return tuple(int(d) for d in np.frombuffer(dims, dtype=">u4")), header


def _read_idx_stream(path: Path, stream, file_size: int | None) -> np.ndarray:
    """The array of an IDX byte stream (`file_size`: the raw file's length, None if gzipped)."""
    shape, header = _read_idx_header(path, stream)
    size = math.prod(shape)
    if file_size is not None and file_size - header != size:
        raise _size_mismatch(path, shape, size, header, f"{file_size - header:,} bytes follow")
    if size > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: IDX header says shape {shape}, i.e. {size:,} bytes of data, more than the "
            f"{MAX_IDX_BYTES:,} fnn reads"
        )
    data = np.empty(size, dtype=np.uint8)
    got = _read_into(stream, data)
    if got < size:
        raise _size_mismatch(path, shape, size, header, f"only {got:,} bytes follow")
    if stream.read(1):
        raise _size_mismatch(path, shape, size, header, "more bytes follow")
    return data.reshape(shape)


def _size_mismatch(path: Path, shape, size: int, header: int, found: str) -> DataError:
    return DataError(
        f"{path}: IDX header says shape {shape}, i.e. {size:,} bytes of data, but {found} the "
        f"{header}-byte header"
    )


def _read_exactly(stream, n: int) -> bytes:
    """Up to `n` bytes of `stream`, fewer only at its end (a gzip stream may return less)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_into(stream, out: np.ndarray, chunk: int = 1 << 20) -> int:
    """Fill the uint8 array `out` from `stream`, `chunk` bytes at a time (never more than
    `out` holds); return the number of bytes read, less than out.size at the stream's end."""
    view, got = memoryview(out), 0
    while got < out.size:
        n = stream.readinto(view[got : got + chunk])
        if not n:
            break
        got += n
    return got


def read_idx_pair(images_path, labels_path, class_names=DIGIT_NAMES, source=None) -> Dataset:
    """An IDX image file (n, 28, 28) and label file (n,) -> Dataset. The two headers are
    compared before any image is read, so a label file that does not match its images costs
    no more than its header."""
    image_shape, labels_shape = read_idx_shape(images_path), read_idx_shape(labels_path)
    if len(image_shape) != 3 or image_shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: expected images of shape (n, 28, 28), got {image_shape}")
    if len(labels_shape) != 1:
        raise DataError(f"{labels_path}: expected labels of shape (n,), got {labels_shape}")
    if labels_shape[0] != image_shape[0]:
        raise DataError(
            f"{labels_path}: {labels_shape[0]:,} labels for the {image_shape[0]:,} images of {images_path}; "
            "the two files must come from the same release"
        )
    labels = read_idx(labels_path)  # the small file first: its problems cost no image reading
    if (labels > 9).any():
        at = int(np.argmax(labels > 9))
        raise DataError(
            f"{labels_path}: label number {at + 1} (of {len(labels)}) is {labels[at]}; expected 0..9"
        )
    images = read_idx(images_path)
    if images.shape != image_shape or labels.shape != labels_shape:  # the files changed while read
        raise DataError(f"{images_path}: its header changed while fnn read it; read it again")
    pixels = images.reshape(len(images), N_PIXELS)
    return from_pixels(pixels, labels.astype(np.int64), class_names, source or str(images_path))


def find_idx_pair(folder: Path, part: str) -> tuple[Path, Path] | None:
    """The image and label files of `part` ("train" or "test") in `folder`, each the `.gz`
    file if present, else the raw one; None when either is missing."""
    paths = [_find_idx(folder, stem) for stem in IDX_FILES[part]]
    return None if None in paths else (paths[0], paths[1])


def _find_idx(folder: Path, stem: str) -> Path | None:
    found = [folder / name for name in (stem + ".gz", stem) if (folder / name).is_file()]
    return found[0] if found else None


def read_idx_folder(folder: Path, part: str) -> Dataset:
    """The images and labels of `part` ("train" or "test") from a folder of IDX files."""
    paths = find_idx_pair(folder, part)
    if paths is None:
        wanted = " and ".join(f"{s}.gz (or {s})" for s in IDX_FILES[part])
        raise DataError(f"{folder}: no {part} files; expected {wanted} in that folder")
    return read_idx_pair(*paths, DIGIT_NAMES, f"{folder} ({part})")
