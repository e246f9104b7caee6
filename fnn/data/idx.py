"""IDX readers: the format MNIST and Fashion-MNIST are published in.

An IDX file is a magic number (two zero bytes, a type byte, the number of dimensions), one
big-endian uint32 per dimension, then the data. A folder of IDX files holds a training part
(`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`) and a test part (`t10k-...`), each
file gzipped (`.gz`) or raw. Every problem raises `DataError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fnn.data.dataset import DIGIT_NAMES, IMAGE_SHAPE, N_PIXELS, Dataset, from_pixels
from fnn.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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
