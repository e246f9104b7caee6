"""Model files that never pickle: saving and loading.

A model file is ONE `.npz` (a zip of `.npy` arrays) holding

    W1, b1, W2, b2, ..., WL, bL      the layers, float32 or float64, W_l: (n_{l-1}, n_l), b_l: (n_l,)
    metadata.json                     a 0-d unicode array: the JSON text of the metadata dict

Nothing in it needs pickle, so `load_model` opens it with `allow_pickle=False` and then checks
every entry against the metadata before building the `MLP`. A file that fails any check raises
`ModelFileError` naming the file, what is wrong and what to do.

Every file is written through `fnn.files.atomic_path`, so a crash midway leaves the old file
(or no file), never half of one.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

import fnn
from fnn.errors import ModelFileError
from fnn.files import atomic_path
from fnn.params import MLP, Dense

FORMAT_NAME = "fnn-model"
FORMAT_VERSION = 1
METADATA_KEY = "metadata.json"
MNIST_PREPROCESSING = (
    "pixels / 255 as float in [0, 1]; 28x28 grayscale, row-major (784 values); "
    "white digit on black background, as MNIST"
)
_FORMAT_KEYS = ("format", "format_version", "fnn_version", "layer_sizes", "dtype")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries, an empty zip


# ---------------------------------------------------------------- saving


def _json_ready(value, where: str):
    """`value` as plain JSON data (numpy scalars -> Python), or TypeError/ValueError naming `where`."""
    if isinstance(value, np.floating):
        value = float(str(value))  # shortest text that reads back the same: float32(0.9) -> 0.9
    elif isinstance(value, (np.integer, np.bool_, np.str_)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}; JSON has no NaN/inf, store None instead")
        return value
    if isinstance(value, Mapping):
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise TypeError(f"{where} has a non-string key {bad[0]!r}; JSON object keys must be str")
        return {key: _json_ready(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where} is a {type(value).__name__}, which JSON cannot hold; "
        "pass str, int, float, bool, None, lists or dicts of them"
    )


def _check_params(params: MLP) -> tuple[tuple[int, ...], np.dtype]:
    """Layer sizes and the common dtype of a savable MLP, or ValueError/TypeError saying why not."""
    if not isinstance(params, MLP) or not params.layers or not all(isinstance(x, Dense) for x in params.layers):
        raise TypeError(f"params must be an fnn.MLP of Dense layers, got {type(params).__name__}")
    dtype = getattr(params.layers[0].W, "dtype", None)
    sizes: list[int] = []
    for l, layer in enumerate(params.layers, start=1):
        for name, array, ndim in ((f"W{l}", layer.W, 2), (f"b{l}", layer.b, 1)):
            if not isinstance(array, np.ndarray) or array.ndim != ndim:
                shape = getattr(array, "shape", type(array).__name__)
                raise ValueError(f"{name} must be a {ndim}-D numpy array, got {shape}")
            if array.dtype != dtype or dtype not in (np.float32, np.float64):
                raise TypeError(f"{name} has dtype {array.dtype}; all arrays must share float32 or float64 (W1 is {dtype})")
            if not np.isfinite(array).all():
                raise ValueError(f"{name} holds NaN or inf: the model diverged; refusing to save it")
        n_in, n_out = layer.W.shape
        if (sizes and n_in != sizes[-1]) or layer.b.shape != (n_out,):
            raise ValueError(f"layer {l} shapes do not chain: W{l} {layer.W.shape}, b{l} {layer.b.shape} after width {sizes[-1:]}")
        sizes += [n_in, n_out] if not sizes else [n_out]
    return tuple(int(n) for n in sizes), dtype


def save_model(path: str | os.PathLike, params: MLP, metadata: Mapping | None = None) -> Path:
    """Write `params` and `metadata` to one `.npz` model file at `path`, atomically.

    params: an MLP; all arrays float32 or all float64, finite, shapes chaining.
    metadata: caller's JSON-serialisable dict, e.g. `class_names` (k strings; default "0".."k-1"),
        `preprocessing` (default `MNIST_PREPROCESSING`), `training_config`, `metrics`, `data`.
        numpy scalars are converted to Python; anything else JSON cannot hold raises TypeError
        naming the key. The keys `format`, `format_version`, `fnn_version`, `layer_sizes` and
        `dtype` are filled in here and may not be passed.
    Returns the path written. The suffix is used as given (use `.npz`).
    """
    sizes, dtype = _check_params(params)
    metadata = dict(metadata or {})
    reserved = [key for key in _FORMAT_KEYS if key in metadata]
    if reserved:
        raise ValueError(f"metadata may not set {reserved}: save_model writes those itself")
    metadata.setdefault("class_names", [str(j) for j in range(sizes[-1])])
    metadata.setdefault("preprocessing", MNIST_PREPROCESSING)
    names = metadata["class_names"]
    if not isinstance(names, (list, tuple)) or len(names) != sizes[-1] or not all(isinstance(s, str) for s in names):
        raise ValueError(f"metadata['class_names'] must be {sizes[-1]} strings (one per output unit), got {names!r}")
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fnn_version": fnn.__version__,
        "layer_sizes": list(sizes),
        "dtype": dtype.name,
        **_json_ready(metadata, "metadata"),
    }
    arrays = {
        f"{name}{l}": array
        for l, layer in enumerate(params.layers, start=1)
        for name, array in (("W", layer.W), ("b", layer.b))
    }
    arrays[METADATA_KEY] = np.array(json.dumps(full, indent=1, allow_nan=False))
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path


# ---------------------------------------------------------------- loading


def _fail(path: Path, problem: str, fix: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}. {fix}")


_RETRAIN = "Re-save it with fnn.io.save_model (e.g. `fnn train --out model.npz`)."


def _read_metadata(path: Path, archive) -> dict:
    """The metadata dict of an open npz, checked for the format fields this fnn understands."""
    if METADATA_KEY not in archive.files:
        shown = ", ".join(archive.files[:8]) or "nothing"
        raise _fail(path, f"is a zip/npz without a {METADATA_KEY} entry (it holds: {shown}), so not an fnn model file", _RETRAIN)
    entry = archive[METADATA_KEY]
    if entry.ndim != 0 or entry.dtype.kind != "U":
        raise _fail(path, f"{METADATA_KEY} should be a 0-d text array, got dtype {entry.dtype} shape {entry.shape}", _RETRAIN)
    try:
        meta = json.loads(str(entry))
    except json.JSONDecodeError as err:
        raise _fail(path, f"{METADATA_KEY} is not valid JSON ({err})", _RETRAIN) from None
    if not isinstance(meta, dict):
        raise _fail(path, f"{METADATA_KEY} should hold a JSON object, got {type(meta).__name__}", _RETRAIN)
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"metadata format is {meta.get('format')!r}, expected {FORMAT_NAME!r}", "This is not an fnn model file.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"format_version is {version!r}, expected a positive int", _RETRAIN)
    if version > FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version} is newer than this fnn {fnn.__version__} reads (up to {FORMAT_VERSION})",
            "Upgrade fnn to load it.",
        )
    sizes = meta.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    ):
        raise _fail(path, f"layer_sizes is {sizes!r}, expected a list of two or more positive ints", _RETRAIN)
    if meta.get("dtype") not in ("float32", "float64"):
        raise _fail(path, f"dtype is {meta.get('dtype')!r}, expected 'float32' or 'float64'", _RETRAIN)
    names = meta.get("class_names")
    if not isinstance(names, list) or len(names) != sizes[-1] or not all(isinstance(s, str) for s in names):
        raise _fail(path, f"class_names should be {sizes[-1]} strings (one per output unit), got {names!r}", _RETRAIN)
    return meta


def _read_layers(path: Path, archive, meta: dict) -> MLP:
    """The MLP of an open npz whose metadata passed `_read_metadata`; every array checked."""
    sizes, dtype = meta["layer_sizes"], np.dtype(meta["dtype"])
    L = len(sizes) - 1
    expected = {f"{name}{l}" for l in range(1, L + 1) for name in "Wb"} | {METADATA_KEY}
    missing = sorted(expected - set(archive.files))
    if missing:
        raise _fail(path, f"missing arrays {missing} for the {L} layers of layer_sizes {sizes}", _RETRAIN)
    extra = sorted(set(archive.files) - expected)
    if extra:
        raise _fail(path, f"unexpected arrays {extra} (layer_sizes {sizes} has {L} layers)", _RETRAIN)

    def read(name: str, shape: tuple[int, ...]) -> np.ndarray:
        array = archive[name]
        if array.dtype != dtype:
            raise _fail(path, f"{name} has dtype {array.dtype} but metadata says {dtype}", _RETRAIN)
        if array.shape != shape:
            raise _fail(path, f"{name} has shape {array.shape} but layer_sizes {sizes} say {shape}", _RETRAIN)
        if not np.isfinite(array).all():
            raise _fail(path, f"{name} holds NaN or inf values", "The model is unusable; retrain it.")
        return array

    return MLP(
        layers=tuple(
            Dense(W=read(f"W{l}", (sizes[l - 1], sizes[l])), b=read(f"b{l}", (sizes[l],)))
            for l in range(1, L + 1)
        )
    )


def load_model(path: str | os.PathLike) -> tuple[MLP, dict]:
    """Read a model file written by `save_model`: (params, metadata), after checking everything.

    Checks: the file exists and is an npz (zip); it has a metadata entry with format
    `fnn-model` and a version this fnn reads; arrays W1, b1, ..., WL, bL exist, no others;
    each has the metadata's dtype and the shape its layer_sizes give (so the layers chain);
    values are finite; nothing needs pickle. Any failure raises ModelFileError.
    metadata: the dict as saved, format fields included.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise _fail(path, f"model file {what}", "Check the path, or train one with `fnn train --out model.npz`.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_MAGIC:
        problem = "is empty" if not head else f"is not an npz (zip) file: it starts with {head!r}"
        raise _fail(path, problem, "fnn model files are .npz files written by fnn.io.save_model.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = _read_metadata(path, archive)
            return _read_layers(path, archive, meta), meta
    except ModelFileError:
        raise
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise _fail(path, "holds pickled Python objects, which fnn never loads (they can run code)", _RETRAIN) from None
        raise _fail(path, f"an entry cannot be read ({err})", _RETRAIN) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise _fail(path, f"is truncated or corrupted ({type(err).__name__}: {err})", "Re-copy or re-save the file.") from None
