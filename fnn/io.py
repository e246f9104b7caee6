"""Model files that never pickle: saving and loading.

A model file is ONE `.npz` (a zip of `.npy` arrays). Format version 2 holds

    layers.{j}.{f}     array field f of layer j (0-based position in the stack), e.g.
                       layers.0.W: (n_0, n_1), layers.0.b: (n_1,), layers.2.W, ...; all
                       float32 or all float64, finite
    metadata.json      a 0-d unicode array: the JSON text of the metadata dict, whose "layers"
                       lists the stack in order, one {"type": class name, **static fields} per
                       layer: [{"type": "Dense"}, {"type": "LeakyRelu", "alpha": 0.01}, ...]

A layer's array fields (its attrs fields not made with `fnn.tree.static`) are its npz entries and
its static fields are its JSON settings, passed back to the class as keyword arguments on loading
(a tuple comes back as a list). So any frozen attrs layer, the user's own too, has one unambiguous
file form. The metadata also carries `layer_sizes` (input width, then the width of each Dense
layer), `dtype` and `class_names`.

Version 1 (fnn before layers were records) held W1, b1, ..., WL, bL and no "layers": it meant
Dense, Relu, Dense, Relu, ..., Dense, and `load_model` still rebuilds exactly that.

Nothing in a file needs pickle, and `load_model` never uses numpy's `.npy` reader: it reads the
zip itself and bounds its work by what the format promises before allocating. Members must be
distinct, unencrypted, stored or deflated `.npy` arrays; metadata.json is read first (at most
`MAX_METADATA_CHARS` characters, nested at most `MAX_JSON_DEPTH` deep); each array's header is
then parsed (numpy's own parser, on at most 10,000 bytes) and compared with the metadata (dtype,
and the shape layer_sizes gives a Dense W and b), with the size its zip member declares, and with
`MAX_MODEL_BYTES` for all arrays together, and only then are its bytes read. Class names must be
printable, 1 to `MAX_CLASS_NAME` characters, one per output, at save and at load. A file that fails
any check raises `ModelFileError` naming the file, what is wrong and what to do; nothing else
escapes `load_model`.

Every file is written through `fnn.files.atomic_path`, so a crash midway leaves the old file
(or no file), never half of one.
"""

from __future__ import annotations

import io
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
from fnn.files import atomic_path
from fnn.layers import BUILT_IN, Dense, Relu
from fnn.params import MLP, layer_sizes
from fnn.tree import static_fields
from fnn.version import __version__

FORMAT_NAME = "fnn-model"
FORMAT_VERSION = 2
METADATA_KEY = "metadata.json"
MNIST_PREPROCESSING = (
    "pixels / 255 as float in [0, 1]; 28x28 grayscale, row-major (784 values); "
    "white digit on black background, as MNIST"
)
MAX_METADATA_CHARS = 1 << 20  # metadata.json text; fnn's own is a few KB
MAX_JSON_DEPTH = 32  # nesting of lists and dicts in metadata.json; fnn's own is 4 deep
MAX_MODEL_BYTES = 1 << 31  # all arrays of one model file; a 784-4096-10 float32 MLP is 13 MB
MAX_MEMBERS = 10_000  # zip members: one per array, and the metadata
MAX_CLASS_NAME = 64  # characters in one class name
_MAX_NPY_HEADER = 10_000  # numpy's own limit on a .npy header it parses
_FORMAT_KEYS = ("format", "format_version", "fnn_version", "layer_sizes", "dtype", "layers")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries, an empty zip
_SAME_WIDTH = tuple(cls for cls in BUILT_IN.values() if cls is not Dense)  # elementwise: width out = width in


def _fields(cls: type, static: bool) -> tuple[str, ...]:
    """The names of an attrs class's static fields (static=True) or array fields (False)."""
    return tuple(f.name for f in attrs.fields(cls) if bool(f.metadata.get("static", False)) == static)


def _shape_problem(stack) -> str | None:
    """Why the Dense layers of `stack` do not chain, or None.

    stack: [(class, {field: (entry name, array)})] in order. Dense W: (n_in, n_out), b: (n_out,),
    and n_in is the width the previous Dense gives through the elementwise layers between them
    (a layer fnn does not know may change the width, so the chain restarts after one).
    """
    width = None
    for cls, arrays in stack:
        if issubclass(cls, Dense):
            (w_name, W), (b_name, b) = arrays["W"], arrays["b"]
            if W.ndim != 2:
                return f"{w_name} has shape {W.shape}; a Dense W is 2-D (n_in, n_out)"
            if b.shape != W.shape[1:]:
                return f"{b_name} has shape {b.shape} but {w_name} {W.shape} says ({W.shape[1]},)"
            if width not in (None, W.shape[0]):
                return f"{w_name} has shape {W.shape} but the layers before it give width {width}"
            width = W.shape[1]
        elif not issubclass(cls, _SAME_WIDTH):
            width = None
    return None


def _output_width(layers) -> int | None:
    """The network's output width k: the last Dense's, when only elementwise layers follow it."""
    for layer in reversed(layers):
        if isinstance(layer, Dense):
            return int(layer.W.shape[1])
        if not isinstance(layer, _SAME_WIDTH):
            return None
    return None


def _class_names_problem(names, k: int | None) -> str | None:
    """Why `names` cannot be a model's class names (k outputs, None if unknown), or None.

    Each name is printed by `fnn predict`, `evaluate` and `serve`, so each must be printable
    text of 1 to `MAX_CLASS_NAME` characters: no control characters (a name must not drive the
    user's terminal), no lone surrogates (which cannot be encoded, so cannot be drawn or printed).
    """
    if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) for s in names) or k not in (None, len(names)):
        return f"must be {'a list of' if k is None else k} strings (one per output unit), got {_show(names)}"
    for j, name in enumerate(names):
        if not 1 <= len(name) <= MAX_CLASS_NAME:
            return f"[{j}] has {len(name):,} characters ({_show(name, 40)}); each name needs 1 to {MAX_CLASS_NAME}"
        if not name.isprintable():
            return f"[{j}] is {_show(name, 80)}, which holds control or other unprintable characters; each name must be printable text"
    return None


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
        named = {f: (f"layers.{j}.{f}", getattr(layer, f)) for f in _fields(cls, static=False)}
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
    problem = _shape_problem(stack)
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
    reserved = [key for key in _FORMAT_KEYS if key in metadata]
    if reserved:
        raise ValueError(f"metadata may not set {reserved}: save_model writes those itself")
    k = _output_width(params.layers)
    if k is not None:
        metadata.setdefault("class_names", [str(j) for j in range(k)])
    metadata.setdefault("preprocessing", MNIST_PREPROCESSING)
    problem = _class_names_problem(metadata.get("class_names"), k)
    if problem:
        raise ValueError(f"metadata['class_names'] {problem}")
    if _depth(metadata) > MAX_JSON_DEPTH - 1:  # one level for the file's own dict
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


# ---------------------------------------------------------------- loading


def _fail(path: Path, problem: str, fix: str) -> ModelFileError:
    return ModelFileError(f"{path}: {problem}. {fix}")


_RETRAIN = "Re-save it with fnn.io.save_model (e.g. `fnn train --out model.npz`)."
_RECOPY = "Re-copy or re-save the file."


def _show(value, limit: int = 120) -> str:
    """repr(value), cut to `limit` characters: a message must stay one short line, and a
    file's text must not reach the terminal raw (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(message: str, limit: int = 200) -> str:
    """An exception's message, escaped and cut like `_show`, without the quotes."""
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
        shown = ", ".join(_show(name, 40) for name in list(members)[:8]) or "nothing"
        raise _fail(path, f"is a zip/npz without a {METADATA_KEY} entry (it holds: {shown}), so not an fnn model file", _RETRAIN)
    for info in infos:
        name = _show(info.filename, 60)
        if not info.filename.endswith(".npy"):
            raise _fail(path, f"zip member {name} is not a .npy array", _RETRAIN)
        if info.flag_bits & 0x1:
            raise _fail(path, f"zip member {name} is encrypted; fnn model files never are", _RETRAIN)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problem = f"zip member {name} is compressed with method {info.compress_type}; fnn reads only stored or deflated members, as numpy writes them"
            raise _fail(path, problem, _RETRAIN)
    return members


def _npy_header(path: Path, entry: str, stream) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length in bytes) of the `.npy` at the start of
    `stream`, read with numpy's own header parser from at most `_MAX_NPY_HEADER` bytes."""
    prefix = stream.read(12)
    if len(prefix) < 10 or not prefix.startswith(b"\x93NUMPY"):
        raise _fail(path, f"{entry} is not a .npy array (it does not start with the .npy magic bytes)", _RETRAIN)
    version = (prefix[6], prefix[7])
    if version not in ((1, 0), (2, 0)):
        raise _fail(path, f"{entry} is a .npy of version {version[0]}.{version[1]}; fnn reads versions 1.0 and 2.0", _RETRAIN)
    start = 10 if version == (1, 0) else 12
    length = int.from_bytes(prefix[8:start], "little")
    if length > _MAX_NPY_HEADER:
        raise _fail(path, f"{entry} has a .npy header of {length:,} bytes; numpy writes under {_MAX_NPY_HEADER:,}", _RETRAIN)
    header = prefix + stream.read(start + length - len(prefix))
    if len(header) < start + length:
        raise _fail(path, f"{entry} ends inside its .npy header", _RECOPY)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        buffer = io.BytesIO(header)
        np.lib.format.read_magic(buffer)
        shape, fortran, dtype = read_header(buffer)
    except Exception as err:  # noqa: BLE001 - numpy's parser of file bytes (ast, tokenize, dtype) may raise many kinds
        raise _fail(path, f"{entry} has a broken .npy header ({type(err).__name__}: {_text(str(err), 100)})", _RECOPY) from None
    if dtype.hasobject:
        raise _fail(path, "holds pickled Python objects, which fnn never loads (they can run code)", _RETRAIN)
    if any(n < 0 for n in shape):
        raise _fail(path, f"{entry} has a .npy header with shape {shape}", _RECOPY)
    return tuple(shape), fortran, dtype, start + length


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


def _depth(value) -> int:
    """How deeply `value` nests lists, tuples and dicts (0 for a scalar), without recursion;
    counting stops just past `MAX_JSON_DEPTH`."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(item, (list, tuple, Mapping)):
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, Mapping) else item))
    return deepest


def _read_metadata(path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict:
    """The metadata dict of an open npz, checked for the format fields this fnn understands."""
    entry = _read_npy(path, archive, members[METADATA_KEY], METADATA_KEY, _metadata_check)
    try:
        meta = json.loads(str(entry[()]))
    except RecursionError:
        raise _fail(path, f"{METADATA_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep", _RETRAIN) from None
    except ValueError as err:  # JSONDecodeError, or an integer of over 4300 digits
        raise _fail(path, f"{METADATA_KEY} is not valid JSON ({_text(str(err), 100)})", _RETRAIN) from None
    if _depth(meta) > MAX_JSON_DEPTH:
        raise _fail(path, f"{METADATA_KEY} nests lists or objects more than {MAX_JSON_DEPTH} deep", _RETRAIN)
    if not isinstance(meta, dict):
        raise _fail(path, f"{METADATA_KEY} should hold a JSON object, got {type(meta).__name__}", _RETRAIN)
    if meta.get("format") != FORMAT_NAME:
        raise _fail(path, f"metadata format is {_show(meta.get('format'))}, expected {FORMAT_NAME!r}", "This is not an fnn model file.")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"format_version is {_show(version)}, expected a positive int", _RETRAIN)
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
        raise _fail(path, f"layer_sizes is {_show(sizes)}, expected a list of two or more positive ints", _RETRAIN)
    if meta.get("dtype") not in ("float32", "float64"):
        raise _fail(path, f"dtype is {_show(meta.get('dtype'))}, expected 'float32' or 'float64'", _RETRAIN)
    if version >= 2:
        layers = meta.get("layers")
        if not isinstance(layers, list) or not layers:
            raise _fail(path, f"layers is {_show(layers)}, expected a list with one entry per layer", _RETRAIN)
        for j, described in enumerate(layers):
            if not isinstance(described, dict) or not isinstance(described.get("type"), str):
                raise _fail(path, f"layers[{j}] is {_show(described)}, expected {{'type': class name, **static fields}}", _RETRAIN)
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
            raise _fail(path, f"layer {j} has type {_show(name, 60)}, which this fnn does not know", fix)
        takes = _fields(cls, static=True)
        unknown = sorted(set(settings) - set(takes))
        if unknown:
            problem = f"layer {j} ({name}) has settings {_show(unknown)}, which {cls.__name__} does not take (it takes {list(takes)})"
            raise _fail(path, problem, f"Load it with the {name} class it was saved with, or re-save it.")
        plan.append((name, cls, settings, {f: f"layers.{j}.{f}" for f in _fields(cls, static=False)}))
    return plan


def _expected_shapes(path: Path, plan, sizes: list[int]) -> dict[str, tuple[int, ...]]:
    """{entry: shape} for the W and b of each Dense layer, from metadata's layer_sizes."""
    dense = [entries for _, cls, _, entries in plan if issubclass(cls, Dense)]
    if len(dense) != len(sizes) - 1:
        problem = f"layer_sizes is {_show(sizes)}, i.e. {len(sizes) - 1} Dense layers, but its layers list {len(dense)}"
        raise _fail(path, problem, _RETRAIN)
    shapes = {}
    for (n_in, n_out), entries in zip(zip(sizes, sizes[1:]), dense):
        shapes[entries["W"]], shapes[entries["b"]] = (n_in, n_out), (n_out,)
    return shapes


def _read_layers(path: Path, archive, members: dict[str, zipfile.ZipInfo], meta: dict, registry: Mapping[str, type]) -> MLP:
    """The MLP of an open npz whose metadata passed `_read_metadata`; every array checked,
    its header against the metadata before its data is read."""
    plan = _plan(path, meta, registry)
    expected = {entry for *_, entries in plan for entry in entries.values()} | {METADATA_KEY}
    missing = sorted(expected - set(members))
    if missing:
        raise _fail(path, f"missing arrays {_show(missing)} for its {len(plan)} layers", _RETRAIN)
    extra = sorted(set(members) - expected)
    if extra:
        raise _fail(path, f"unexpected arrays {_show(extra)}, which none of its {len(plan)} layers has", _RETRAIN)
    dtype = np.dtype(meta["dtype"])
    shapes = _expected_shapes(path, plan, meta["layer_sizes"])
    budget = [MAX_MODEL_BYTES]

    def check(entry: str):
        def problem(shape, found) -> str | None:
            if found != dtype:
                return f"{entry} has dtype {found} but metadata says {dtype}"
            if entry in shapes and shape != shapes[entry]:
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
    problem = _shape_problem(stack)
    if problem:
        raise _fail(path, problem, _RETRAIN)
    layers = []
    for j, ((name, cls, settings, _), (_, arrays)) in enumerate(zip(plan, stack)):
        try:
            layers.append(cls(**{f: array for f, (_, array) in arrays.items()}, **settings))
        except Exception as err:  # noqa: BLE001 - a user class may raise anything; report it, never a traceback
            problem = f"layer {j} ({name}) cannot be rebuilt from settings {_show(settings)} ({type(err).__name__}: {_text(str(err), 200)})"
            raise _fail(path, problem, f"Load it with the {name} class it was saved with, or re-save it.") from None
    params = MLP(layers=layers)
    sizes = list(layer_sizes(params)) if any(isinstance(layer, Dense) for layer in layers) else []
    if sizes != meta["layer_sizes"]:
        raise _fail(path, f"layer_sizes is {meta['layer_sizes']} but its Dense layers give {sizes}", _RETRAIN)
    problem = _class_names_problem(meta.get("class_names"), _output_width(layers))
    if problem:
        raise _fail(path, f"class_names {problem}", _RETRAIN)
    return params


def load_model(path: str | os.PathLike, layers: Mapping[str, type] | None = None) -> tuple[MLP, dict]:
    """Read a model file written by `save_model`: (params, metadata), after checking everything.

    layers: extra layer classes by type name, e.g. {"Swish": Swish}, for the user's own layers;
        merged over `fnn.layers.BUILT_IN` (so it may also replace a built-in).
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
        raise _fail(path, f"model file {what}", "Check the path, or train one with `fnn train --out model.npz`.")
    with open(path, "rb") as f:
        head = f.read(4)
    if head not in _ZIP_MAGIC:
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
