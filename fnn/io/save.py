"""Saving a model file (see `fnn.io` for the format)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from fnn.files import atomic_path
from fnn.layers import Dense
from fnn.params import MLP, layer_sizes
from fnn.tree import static_fields
from fnn.version import __version__

from fnn.io.format import (
    FORMAT_KEYS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_JSON_DEPTH,
    MAX_METADATA_CHARS,
    MAX_MODEL_BYTES,
    METADATA_KEY,
    MNIST_PREPROCESSING,
    class_names_problem,
    fields,
    json_depth,
    output_width,
    shape_problem,
)

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


def _describe_params(params: MLP) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(metadata "layers" list, {entry name: array}) of a savable MLP, or ValueError/TypeError
    saying why it is not: all arrays numpy, one float dtype, finite; Dense shapes chaining."""
    if not isinstance(params, MLP) or not params.layers or not all(attrs.has(type(x)) for x in params.layers):
        raise TypeError(f"params must be an fnn.MLP of attrs layer records, got {type(params).__name__}")
    if not any(isinstance(layer, Dense) for layer in params.layers):
        raise ValueError("params has no Dense layer, so no layer_sizes to save; a model file needs one")
    described, arrays, stack = [], {}, []
    for j, layer in enumerate(params.layers):
        cls = type(layer)
        settings = {f: _json_ready(v, f"params.layers[{j}].{f}") for f, v in static_fields(layer).items()}
        if "type" in settings:
            raise ValueError(f"params.layers[{j}] ({cls.__name__}) has a static field named 'type', which model files reserve")
        described.append({"type": cls.__name__, **settings})
        named = {f: (f"layers.{j}.{f}", getattr(layer, f)) for f in fields(cls, static=False)}
        for name, array in named.values():
            if not isinstance(array, np.ndarray):
                raise TypeError(f"{name} ({cls.__name__}) must be a numpy array, got {type(array).__name__}")
            arrays[name] = array
        stack.append((cls, named))
    first = next(iter(arrays))  # there is one: a Dense has W and b
    dtype = arrays[first].dtype
    for name, array in arrays.items():
        if array.dtype != dtype or dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} has dtype {array.dtype}; all arrays must share float32 or float64 ({first} is {dtype})")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or inf: the model diverged; refusing to save it")
    problem = shape_problem(stack)
    if problem:
        raise ValueError(problem)
    return described, arrays


def save_model(path: str | os.PathLike, params: MLP, metadata: Mapping | None = None) -> Path:
    """Write `params` and `metadata` to one `.npz` model file at `path`, atomically.

    params: an MLP of layer records (fnn's or the user's own) with at least one Dense layer;
        all arrays float32 or all float64, finite, Dense shapes chaining; static fields JSON-able.
    metadata: caller's JSON-serialisable dict, e.g. `class_names` (k strings, k the last Dense's
        width; default "0".."k-1"; required when a layer fnn does not know follows the last Dense),
        `preprocessing` (default `MNIST_PREPROCESSING`), `training_config`, `metrics`, `data`.
        numpy scalars are converted to Python; anything else JSON cannot hold raises TypeError
        naming the key. The keys `format`, `format_version`, `fnn_version`, `layer_sizes`,
        `dtype` and `layers` are filled in here and may not be passed.
    Returns the path written. The suffix is used as given (use `.npz`).
    """
    described, arrays = _describe_params(params)
    metadata = dict(metadata or {})
    reserved = [key for key in FORMAT_KEYS if key in metadata]
    if reserved:
        raise ValueError(f"metadata may not set {reserved}: save_model writes those itself")
    k = output_width(params.layers)
    if k is not None:
        metadata.setdefault("class_names", [str(j) for j in range(k)])
    metadata.setdefault("preprocessing", MNIST_PREPROCESSING)
    problem = class_names_problem(metadata.get("class_names"), k)
    if problem:
        raise ValueError(f"metadata['class_names'] {problem}")
    if json_depth(metadata) > MAX_JSON_DEPTH - 1:  # one level for the file's own dict
        raise ValueError(f"metadata nests lists or dicts more than {MAX_JSON_DEPTH - 1} deep; load_model would refuse the file")
    total = sum(array.nbytes for array in arrays.values())
    if total > MAX_MODEL_BYTES:
        raise ValueError(f"params hold {total:,} bytes, more than the {MAX_MODEL_BYTES:,} load_model reads")
    full = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fnn_version": __version__,
        "layer_sizes": list(layer_sizes(params)),
        "dtype": next(iter(arrays.values())).dtype.name,
        "layers": described,
        **_json_ready(metadata, "metadata"),
    }
    text = json.dumps(full, indent=1, allow_nan=False)
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata is {len(text):,} characters of JSON, more than the {MAX_METADATA_CHARS:,} load_model reads")
    arrays[METADATA_KEY] = np.array(text)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return path
