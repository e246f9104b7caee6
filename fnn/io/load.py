"""Loading a model file, bounded by what the format promises (see `fnn.io`)."""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from fnn.errors import ModelFileError
from fnn.layers import ELEMENTWISE, Dense, Relu
from fnn.nn import forward_pass
from fnn.params import BUILT_IN, MLP, layer_sizes
from fnn.version import __version__

from fnn.io.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_JSON_DEPTH,
    MAX_MEMBERS,
    MAX_METADATA_CHARS,
    MAX_MODEL_BYTES,
    METADATA_KEY,
    ZIP_MAGIC,
    class_names_problem,
    fields,
    json_depth,
    output_width,
    shape_problem,
    show,
)
from fnn.io.npy import NpyProblem, npy_header

# ---------------------------------------------------------------- loading


def _fail(path: Path, problem: str, fix: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}. {fix}")


_RETRAIN = "Re-save it with fnn.io.save_model, or train a new one: `fnn train --out runs/x` writes runs/x/model.npz."
_RECOPY = "Re-copy or re-save the file."


def _text(message: str, limit: int = 200) -> str:
    """An exception's message, escaped and cut like `show`, without the quotes."""
    text = repr(message)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """{entry name: zip member} of an npz, each member checked before any is read: no two
    with one name, each a `.npy` (numpy reads other members as raw bytes), not encrypted,
    stored or deflated (the methods numpy writes)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _fail(path, f"holds {len(infos):,} zip members; a model file has one per array, at most {MAX_MEMBERS:,}", _RETRAIN)
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        entry = info.filename.removesuffix(".npy")
        if entry in members:
            raise _fail(path, f"holds two zip members named {info.filename!r}, so it was tampered with or broken", _RECOPY)
        members[entry] = info
    if METADATA_KEY not in members:
        shown = ", ".join(show(name, 40) for name in list(members)[:8]) or "nothing"
        raise _fail(path, f"is a zip/npz without a {METADATA_KEY} entry (it holds: {shown}), so not an fnn model file", _RETRAIN)
    for info in infos:
        name = show(info.filename, 60)
        if not info.filename.endswith(".npy"):
            raise _fail(path, f"zip member {name} is not a .npy array", _RETRAIN)
        if info.flag_bits & 0x1:
            raise _fail(path, f"zip member {name} is encrypted; fnn model files never are", _RETRAIN)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problem = f"zip member {name} is compressed with method {info.compress_type}; fnn reads only stored or deflated members, as numpy writes them"
            raise _fail(path, problem, _RETRAIN)
    return members


def _npy_header(path: Path, entry: str, stream) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """`fnn.io.npy.npy_header`, its problem a ModelFileError naming the file."""
    try:
        return npy_header(entry, stream)
    except NpyProblem as problem:
        raise _fail(path, str(problem), _RECOPY if problem.damaged else _RETRAIN) from None



def _read_npy(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: str, check) -> np.ndarray:
    """The array of one zip member, its data read only after `check(shape, dtype)` (a problem
    string or None) passed on its header and the member's declared size matched the header's."""
    with archive.open(info) as stream:
        shape, fortran, dtype, offset = _npy_header(path, entry, stream)
        problem = check(shape, dtype)
        if problem:
            raise _fail(path, problem, _RETRAIN)
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            problem = f"{entry} declares {info.file_size:,} bytes in the zip, but its .npy header {shape} {dtype} means {offset + nbytes:,}"
            raise _fail(path, problem, _RECOPY)
        data = np.empty(nbytes, dtype=np.uint8)
        view, got = memoryview(data), 0
        while got < nbytes:
            chunk = stream.read(min(1 << 20, nbytes - got))
            if not chunk:
                raise _fail(path, f"{entry} is truncated ({got:,} of {nbytes:,} bytes)", _RECOPY)
            view[got : got + len(chunk)] = chunk
            got += len(chunk)
        stream.read(1)  # at the member's end: zipfile checks its CRC here
    array = data.view(dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _metadata_check(shape, dtype) -> str | None:
    if dtype.kind != "U" or shape != ():
        return f"{METADATA_KEY} should be a 0-d text array, got dtype {dtype} shape {shape}"
    if dtype.itemsize > 4 * MAX_METADATA_CHARS:
        return f"{METADATA_KEY} holds {dtype.itemsize // 4:,} characters, more than the {MAX_METADATA_CHARS:,} fnn reads"
    return None


def _read_metadata(path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict:
    """The metadata dict of an open npz, checked for the format fields this fnn understands."""
    entry = _read_npy(path, archive, members[METADATA_KEY], METADATA_KEY, _metadata_check)
    try:
        meta = json.loads(str(entry[()]))
    except RecursionError:
        raise _fail(path, f"{METADATA_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep", _RETRAIN) from None
    except ValueError as err:  # JSONDecodeError, or an integer of over 4300 digits
        raise _fail(path, f"{METADATA_KEY} is not valid JSON ({_text(str(err), 100)})", _RETRAIN) from None
    if json_depth(meta) > MAX_JSON_DEPTH:
        raise _fail(path, f"{METADATA_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep", _RETRAIN)
    if not isinstance(meta, dict):
        raise _fail(path, f"{METADATA_KEY} should hold a JSON object, got {type(meta).__name__}", _RETRAIN)
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"metadata format is {show(meta.get('format'))}, expected {FORMAT_NAME!r}", "This is not an fnn model file.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"format_version is {show(version)}, expected a positive int", _RETRAIN)
    if version > FORMAT_VERSION:
        raise _fail(
            path,
            f"format version {version} is newer than this fnn {__version__} reads (up to {FORMAT_VERSION})",
            "Upgrade fnn to load it.",
        )
    sizes = meta.get("layer_sizes")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    ):
        raise _fail(path, f"layer_sizes is {show(sizes)}, expected a list of two or more positive ints", _RETRAIN)
    if meta.get("dtype") not in ("float32", "float64"):
        raise _fail(path, f"dtype is {show(meta.get('dtype'))}, expected 'float32' or 'float64'", _RETRAIN)
    if version >= 2:
        layers = meta.get("layers")
        if not isinstance(layers, list) or not layers:
            raise _fail(path, f"layers is {show(layers)}, expected a list with one entry per layer", _RETRAIN)
        for j, described in enumerate(layers):
            if not isinstance(described, dict) or not isinstance(described.get("type"), str):
                raise _fail(path, f"layers[{j}] is {show(described)}, expected {{'type': class name, **static fields}}", _RETRAIN)
    return meta


def _plan(path: Path, meta: dict, registry: Mapping[str, type]) -> list[tuple[str, type, dict, dict[str, str]]]:
    """[(type name, class, static settings, {array field: entry name})], one per layer of the file."""
    if meta["format_version"] == 1:  # W1, b1, ..., WL, bL meant Dense, Relu, Dense, ..., Relu, Dense
        dense = [("Dense", Dense, {}, {"W": f"W{l}", "b": f"b{l}"}) for l in range(1, len(meta["layer_sizes"]))]
        return [layer for d in dense[:-1] for layer in (d, ("Relu", Relu, {}, {}))] + dense[-1:]
    plan = []
    for j, described in enumerate(meta["layers"]):
        settings = {key: value for key, value in described.items() if key != "type"}
        name = described["type"]
        cls = registry.get(name)
        if cls is None:
            fix = f"Pass its class: load_model(path, layers={{{name!r}: {name}}})" if name.isidentifier() else _RETRAIN
            raise _fail(path, f"layer {j} has type {show(name, 60)}, which this fnn does not know", fix)
        takes = fields(cls, static=True)
        unknown = sorted(set(settings) - set(takes))
        if unknown:
            problem = f"layer {j} ({name}) has settings {show(unknown)}, which {cls.__name__} does not take (it takes {list(takes)})"
            raise _fail(path, problem, f"Load it with the {name} class it was saved with, or re-save it.")
        plan.append((name, cls, settings, {f: f"layers.{j}.{f}" for f in fields(cls, static=False)}))
    return plan


def _expected_shapes(path: Path, plan, sizes: list[int]) -> dict[str, tuple[int | None, ...]]:
    """{entry: shape} for the W and b of each Dense layer, from metadata's layer_sizes (None:
    any length; the input width of a first Dense after layers that reshape, as a CNN's Flatten)."""
    dense = [entries for _, cls, _, entries in plan if issubclass(cls, Dense)]
    if len(dense) != len(sizes) - 1:
        problem = f"layer_sizes is {show(sizes)}, i.e. {len(sizes) - 1} Dense layers, but its layers list {len(dense)}"
        raise _fail(path, problem, _RETRAIN)
    first = next(j for j, (_, cls, _, _) in enumerate(plan) if issubclass(cls, Dense))
    reshaped = not all(issubclass(cls, ELEMENTWISE) for _, cls, _, _ in plan[:first])
    shapes = {}
    for (n_in, n_out), entries in zip(zip(sizes, sizes[1:]), dense):
        shapes[entries["W"]], shapes[entries["b"]] = (None if reshaped else n_in, n_out), (n_out,)
        reshaped = False
    return shapes


def _read_layers(path: Path, archive, members: dict[str, zipfile.ZipInfo], meta: dict, registry: Mapping[str, type]) -> MLP:
    """The MLP of an open npz whose metadata passed `_read_metadata`; every array checked,
    its header against the metadata before its data is read."""
    plan = _plan(path, meta, registry)
    expected = {entry for *_, entries in plan for entry in entries.values()} | {METADATA_KEY}
    missing = sorted(expected - set(members))
    if missing:
        raise _fail(path, f"missing arrays {show(missing)} for its {len(plan)} layers", _RETRAIN)
    extra = sorted(set(members) - expected)
    if extra:
        raise _fail(path, f"unexpected arrays {show(extra)}, which none of its {len(plan)} layers has", _RETRAIN)
    dtype = np.dtype(meta["dtype"])
    shapes = _expected_shapes(path, plan, meta["layer_sizes"])
    budget = [MAX_MODEL_BYTES]

    def check(entry: str):
        def problem(shape, found) -> str | None:
            if found != dtype:
                return f"{entry} has dtype {found} but metadata says {dtype}"
            if entry in shapes and (len(shape) != len(shapes[entry]) or any(
                    want not in (None, got) for got, want in zip(shape, shapes[entry]))):
                return f"{entry} has shape {shape} but metadata's layer_sizes {meta['layer_sizes']} give {shapes[entry]}"
            budget[0] -= math.prod(shape) * found.itemsize
            if budget[0] < 0:
                return f"its arrays hold more than {MAX_MODEL_BYTES:,} bytes (at {entry}, shape {shape}), more than fnn loads"
            return None

        return problem

    def read(entry: str) -> np.ndarray:
        array = _read_npy(path, archive, members[entry], entry, check(entry))
        if not np.isfinite(array).all():
            raise _fail(path, f"{entry} holds NaN or inf values", "The model is unusable; retrain it.")
        return array

    stack = [(cls, {f: (entry, read(entry)) for f, entry in entries.items()}) for _, cls, _, entries in plan]
    problem = shape_problem(stack)
    if problem:
        raise _fail(path, problem, _RETRAIN)
    layers = []
    for j, ((name, cls, settings, _), (_, arrays)) in enumerate(zip(plan, stack)):
        try:
            layers.append(cls(**{f: array for f, (_, array) in arrays.items()}, **settings))
        except Exception as err:  # noqa: BLE001 - a user class may raise anything; report it, never a traceback
            problem = f"layer {j} ({name}) cannot be rebuilt from settings {show(settings)} ({type(err).__name__}: {_text(str(err), 200)})"
            raise _fail(path, problem, f"Load it with the {name} class it was saved with, or re-save it.") from None
        for field, value in settings.items():  # a number the network computes with must survive the cast
            with np.errstate(over="ignore"):
                finite = not isinstance(value, float) or np.isfinite(dtype.type(value))
            if not finite:
                problem = f"layer {j} ({name}) has {field} = {value!r}, which is not finite as {dtype}"
                raise _fail(path, problem, _RETRAIN)
    params = MLP(layers=layers)
    sizes = list(layer_sizes(params)) if any(isinstance(layer, Dense) for layer in layers) else []
    if sizes != meta["layer_sizes"]:
        raise _fail(path, f"layer_sizes is {meta['layer_sizes']} but its Dense layers give {sizes}", _RETRAIN)
    if not all(isinstance(layer, (Dense, *ELEMENTWISE)) for layer in layers):
        try:  # layers that reshape (a CNN's): one row of zeros through them proves the shapes chain
            with np.errstate(all="ignore"):
                forward_pass(params, np.zeros((1, sizes[0]), dtype))
        except Exception as err:  # noqa: BLE001 - a user class may raise anything; report it, never a traceback
            raise _fail(path, f"its layers do not chain ({type(err).__name__}: {_text(str(err), 200)})", _RETRAIN) from None
    problem = class_names_problem(meta.get("class_names"), output_width(layers))
    if problem:
        raise _fail(path, f"class_names {problem}", _RETRAIN)
    return params


def load_model(path: str | os.PathLike, layers: Mapping[str, type] | None = None) -> tuple[MLP, dict]:
    """Read a model file written by `save_model`: (params, metadata), after checking everything.

    layers: extra layer classes by type name, e.g. {"Swish": Swish}, for the user's own layers;
        merged over `fnn.params.BUILT_IN` (so it may also replace a built-in).
    Checks: the file is a regular file and a zip whose members are distinct, unencrypted,
    stored or deflated `.npy` arrays; it has a metadata entry (at most `MAX_METADATA_CHARS`
    characters of JSON nested at most `MAX_JSON_DEPTH` deep) with format `fnn-model` and a
    version this fnn reads; every layer's type is known and its settings are static fields of
    its class; each array field's entry exists, no others. Each array's `.npy` header is read
    first and must give the metadata's dtype, the shape layer_sizes gives (for Dense W and b),
    a size within `MAX_MODEL_BYTES` for all arrays together, and the size its zip member
    declares; only then is its data read (numpy's reader is never used, so nothing pickles).
    Then: arrays finite; Dense shapes chain and give layer_sizes; class_names has one
    printable name of 1 to `MAX_CLASS_NAME` characters per output; each layer rebuilds (its
    class's validators pass). Version-1 files load as Dense, Relu, ..., Dense. Any failure
    raises ModelFileError naming the file and what to do.
    metadata: the dict as saved, format fields included.
    """
    if layers is not None and not (
        isinstance(layers, Mapping) and all(isinstance(k, str) and isinstance(c, type) and attrs.has(c) for k, c in layers.items())
    ):
        raise TypeError(f"layers must map type names to attrs layer classes, e.g. {{'Swish': Swish}}, got {layers!r}")
    registry = {**BUILT_IN, **(layers or {})}
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "is not a regular file (a FIFO, device or socket)" if path.exists() else "does not exist"
        inside = path / "model.npz"
        fix = (f"A run folder holds its model: pass {inside}." if inside.is_file()
               else "Check the path, or train one: `fnn train --out runs/x` writes runs/x/model.npz.")
        raise _fail(path, f"model file {what}", fix)
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in ZIP_MAGIC:
        problem = "is empty" if not head else f"is not an npz (zip) file: it starts with {head!r}"
        raise _fail(path, problem, "fnn model files are .npz files written by fnn.io.save_model.")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(path, archive)
            meta = _read_metadata(path, archive, members)
            return _read_layers(path, archive, members, meta, registry), meta
    except ModelFileError:
        raise
    except NotImplementedError as err:  # zipfile: a "version needed to extract" or feature it lacks
        raise _fail(path, f"uses a zip feature fnn cannot read ({err})", _RETRAIN) from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError, struct.error) as err:
        raise _fail(path, f"is truncated or corrupted ({type(err).__name__}: {_text(str(err), 100)})", _RECOPY) from None
