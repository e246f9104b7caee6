"""The model file format's constants and the checks both saving and loading make (see `fnn.io`)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from fnn.layers import ELEMENTWISE, Dense

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
MAX_NPY_HEADER = 10_000  # numpy's own limit on a .npy header it parses
FORMAT_KEYS = ("format", "format_version", "fnn_version", "layer_sizes", "dtype", "layers")
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries, an empty zip
_SAME_WIDTH = ELEMENTWISE  # width out = width in


def fields(cls: type, static: bool) -> tuple[str, ...]:
    """The names of an attrs class's static fields (static=True) or array fields (False)."""
    return tuple(f.name for f in attrs.fields(cls) if bool(f.metadata.get("static", False)) == static)


def shape_problem(stack) -> str | None:
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


def output_width(layers) -> int | None:
    """The network's output width k: the last Dense's, when only elementwise layers follow it."""
    for layer in reversed(layers):
        if isinstance(layer, Dense):
            return int(layer.W.shape[1])
        if not isinstance(layer, _SAME_WIDTH):
            return None
    return None


def class_names_problem(names, k: int | None) -> str | None:
    """Why `names` cannot be a model's class names (k outputs, None if unknown), or None.

    Each name is printed by `fnn predict`, `evaluate` and `serve`, so each must be printable
    text of 1 to `MAX_CLASS_NAME` characters: no control characters (a name must not drive the
    user's terminal), no lone surrogates (which cannot be encoded, so cannot be drawn or printed).
    """
    if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) for s in names) or k not in (None, len(names)):
        return f"must be {'a list of' if k is None else k} strings (one per output unit), got {show(names)}"
    for j, name in enumerate(names):
        if not 1 <= len(name) <= MAX_CLASS_NAME:
            return f"[{j}] has {len(name):,} characters ({show(name, 40)}); each name needs 1 to {MAX_CLASS_NAME}"
        if not name.isprintable():
            return f"[{j}] is {show(name, 80)}, which holds control or other unprintable characters; each name must be printable text"
    return None


def show(value, limit: int = 120) -> str:
    """repr(value), cut to `limit` characters: a message must stay one short line, and a
    file's text must not reach the terminal raw (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_depth(value) -> int:
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
