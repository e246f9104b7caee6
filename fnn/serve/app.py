"""The app behind `fnn serve`: a request's body to the model's answer, and the fixed responses
(the page, the metadata). No sockets here: `fnn.serve.http` serves these over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import threading
from collections.abc import Mapping
from importlib import resources

import attrs
import numpy as np

from fnn.errors import UserError
from fnn.images import digit_from_bytes
from fnn.nn import predict_proba

MAX_BODY = 1 << 20  # bytes: a request body larger than this is refused (413) unread
MAX_UPLOAD_PIXELS = 4_000_000  # width x height of an uploaded image; a digit needs far fewer
SIDE = 28  # the page and the pixels API speak 28x28 images
N_INPUTS = SIDE * SIDE
EXPECTED_JSON = '{"pixels": [784 numbers in 0..255]} (28x28 row-major, white digit on black)'
IMAGE_TYPES = ("image/png", "image/jpeg")
JSON_TYPES = ("application/json", "")  # no Content-Type at all is read as JSON



# ---------------------------------------------------------------- the app: pure request -> answer


@attrs.frozen(eq=False)
class App:
    """What the handler serves: the model, its class names, and the two fixed responses."""

    params: object  # an fnn.MLP taking 784 inputs
    class_names: tuple[str, ...]
    metadata_json: bytes  # GET /api/model
    page: bytes  # GET /
    page_csp: str  # the page's Content-Security-Policy (hashes of its inline script and style)


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message saying what was expected."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def _json_kind(value) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(value), "null")


def short(value, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def pixels_from_json(body: bytes) -> np.ndarray:
    """A JSON body `{"pixels": [784 numbers in 0..255]}` -> x: (784,) float32 in [0, 1], pixels / 255.

    Raises RequestError(400) naming the first thing wrong: not JSON (NaN and Infinity included),
    not an object, no "pixels", not a list of 784, an element that is not a number (booleans are
    not numbers here), or one outside 0..255.
    """
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise RequestError(400, f"the body is not valid JSON ({err.msg}: line {err.lineno} column {err.colno}); "
                                f"expected {EXPECTED_JSON}") from None
    except (ValueError, RecursionError) as err:  # said in words: Python's own text names its internals
        why = ("not UTF-8 text" if isinstance(err, UnicodeDecodeError) else "nested too deeply"
               if isinstance(err, RecursionError) else "a number of more than 4,300 digits" if "digits" in str(err)
               else str(err) if str(err).endswith("is not a JSON number") else "a value JSON does not have")
        raise RequestError(400, f"the body is not valid JSON ({why}); expected {EXPECTED_JSON}") from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"expected a JSON object {EXPECTED_JSON}, got a JSON {_json_kind(doc)}")
    if "pixels" not in doc:
        keys = ", ".join(short(key, 20) for key in list(doc)[:5]) or "none"
        raise RequestError(400, f"missing key 'pixels' (keys given: {keys}); expected {EXPECTED_JSON}")
    pixels = doc["pixels"]
    if not isinstance(pixels, list):
        raise RequestError(400, f"'pixels' must be an array of 784 numbers in 0..255, got a JSON {_json_kind(pixels)}")
    if len(pixels) != N_INPUTS:
        raise RequestError(400, f"'pixels' has {len(pixels)} values; expected 784 (28x28, row-major)")
    for i, value in enumerate(pixels):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(400, f"pixels[{i}] is a JSON {_json_kind(value)} ({short(value)}); expected a number in 0..255")
        if not 0 <= value <= 255:  # also catches 1e999, which json reads as inf
            raise RequestError(400, f"pixels[{i}] is {short(value)}; expected a number in 0..255")
    return np.array(pixels, dtype=np.float32) / np.float32(255)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the largest SOF segment before the scan data, or None if none is found."""
    sizes, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: every frame header is behind us
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            sizes.append((width, height))
        i += 2 + length
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) a PNG or JPEG declares in its header, read without decoding anything.

    Raises RequestError(400) when the bytes are neither, or declare no size.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        if size is not None:
            return size
        raise RequestError(400, "the JPEG has no frame header (SOF) before its scan data, so it declares no size")
    raise RequestError(400, f"the body is not a PNG or JPEG file (it starts with {data[:8]!r})")


def pixels_from_image(data: bytes, slots: threading.Semaphore) -> np.ndarray:
    """A PNG/JPEG body -> x: (784,) float32 in [0, 1], made MNIST-like as `fnn predict` does.

    The declared size is checked against `MAX_UPLOAD_PIXELS` first (a 200 KB PNG can declare
    49 million pixels and take seconds and a gigabyte to decode); `slots` bounds how many images
    are decoded at once. Raises RequestError(400) for anything `digit_from_bytes` refuses.
    """
    width, height = image_size(data)
    if width * height > MAX_UPLOAD_PIXELS:
        raise RequestError(
            400,
            f"the image declares {width}x{height} = {width * height:,} pixels; fnn serve reads up to "
            f"{MAX_UPLOAD_PIXELS:,} (scale it down, or use fnn predict for large photos)",
        )
    try:
        with slots:
            return digit_from_bytes(data, "the uploaded image")
    except UserError as err:  # DataError: unreadable, blank, ...
        raise RequestError(400, str(err)) from None


def answer(app: App, x: np.ndarray) -> dict:
    """x: (784,) float32 in [0, 1] -> the predict response: label, class name, probabilities, input."""
    probabilities = predict_proba(app.params, x[None, :])[0]
    if not np.isfinite(probabilities).all():  # a model whose weights overflow: no answer, and never NaN in JSON
        raise RequestError(500, "the model's output for this input is not a number (its weights overflow "
                                "float32); the model file is unusable: retrain it")
    label = int(probabilities.argmax())
    return {
        "label": label,
        "class_name": app.class_names[label],
        "probabilities": probabilities.astype(float).tolist(),
        "input": x.astype(float).tolist(),
    }


# ---------------------------------------------------------------- building the app


def _inline_hashes(html: str, tag: str) -> str:
    """CSP source expressions ('sha256-...') for each inline <tag>...</tag> of the page."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies)


def _page() -> tuple[bytes, str]:
    """The page's bytes and a Content-Security-Policy that lets only its own inline code run."""
    html = resources.files("fnn").joinpath("static/serve.html").read_text(encoding="utf-8")
    csp = (
        "default-src 'none'; "
        f"script-src {_inline_hashes(html, 'script')}; style-src {_inline_hashes(html, 'style')}; "
        "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode("utf-8"), csp


def _class_names(metadata: Mapping, k: int) -> tuple[str, ...]:
    names = metadata.get("class_names")
    if names is None:
        return tuple(str(j) for j in range(k))
    if not isinstance(names, (list, tuple)) or len(names) != k or not all(isinstance(s, str) for s in names):
        raise ValueError(f"metadata['class_names'] must be {k} strings, one per output of the model, got {names!r}")
    return tuple(names)


def make_app(params, metadata: Mapping) -> App:
    """Check that `params` reads 28x28 images and build the responses that never change.

    Raises ValueError when the model does not take 784 inputs or the class names do not match
    its outputs.
    """
    try:
        k = predict_proba(params, np.zeros((1, N_INPUTS), dtype=np.float32)).shape[1]
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"fnn serve needs a model that takes 784 inputs (28x28 images, as MNIST): {err}"
        ) from None
    page, csp = _page()
    metadata_json = json.dumps(dict(metadata), indent=1, default=str).encode("utf-8")
    return App(params=params, class_names=_class_names(metadata, k), metadata_json=metadata_json, page=page, page_csp=csp)
