"""`fnn serve`: a page to draw a digit on, and the JSON API behind it.

The standard library's threading HTTP server, one thread per connection; the model is read-only,
so requests share it without locks. Routes (nothing else is served; no path reaches the disk):

    GET  /             the page (fnn/static/serve.html: inline JS and CSS, no CDN, works offline)
    GET  /api/model    the model file's metadata: layer sizes, class names, training config, metrics
    POST /api/predict  {"pixels": [784 numbers in 0..255]}  (application/json: row-major 28x28,
                       white digit on black, already MNIST-like; divided by 255), or the bytes of
                       a PNG/JPEG (image/png, image/jpeg: made MNIST-like by
                       `fnn.images.digit_from_bytes`, exactly as `fnn predict` reads photos)
                    -> {"label": int, "class_name": str, "probabilities": [k floats],
                        "input": [784 floats in 0..1, the x the network received]}

Every error is JSON `{"error": "..."}` saying what was expected: 400 bad input, 404 unknown path,
405 wrong method (with `Allow`), 411 no Content-Length, 413 a body over `MAX_BODY` (decided from
the header, before reading), 415 another Content-Type; 500 `{"error": "internal error"}` for a
bug, whose traceback goes to the `fnn.serve` logger, never to the client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

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

log = logging.getLogger(__name__)


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


def _short(value, limit: int = 40) -> str:
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
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RequestError(400, f"the body is not valid JSON ({err}); expected {EXPECTED_JSON}") from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"expected a JSON object {EXPECTED_JSON}, got a JSON {_json_kind(doc)}")
    if "pixels" not in doc:
        keys = ", ".join(_short(key, 20) for key in list(doc)[:5]) or "none"
        raise RequestError(400, f"missing key 'pixels' (keys given: {keys}); expected {EXPECTED_JSON}")
    pixels = doc["pixels"]
    if not isinstance(pixels, list):
        raise RequestError(400, f"'pixels' must be an array of 784 numbers in 0..255, got a JSON {_json_kind(pixels)}")
    if len(pixels) != N_INPUTS:
        raise RequestError(400, f"'pixels' has {len(pixels)} values; expected 784 (28x28, row-major)")
    for i, value in enumerate(pixels):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(400, f"pixels[{i}] is a JSON {_json_kind(value)} ({_short(value)}); expected a number in 0..255")
        if not 0 <= value <= 255:  # also catches 1e999, which json reads as inf
            raise RequestError(400, f"pixels[{i}] is {_short(value)}; expected a number in 0..255")
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


# ---------------------------------------------------------------- HTTP


def _content_length(headers) -> int:
    """The request's body length from its headers: 411 when absent (or chunked), 400 when not
    one non-negative integer, 413 when over `MAX_BODY` — all before any of the body is read."""
    values = headers.get_all("Content-Length") or []
    if not values:
        if headers.get("Transfer-Encoding"):
            raise RequestError(411, "send a Content-Length header; chunked bodies are not accepted")
        raise RequestError(411, "a POST needs a Content-Length header (the body's size in bytes)")
    if headers.get("Transfer-Encoding"):
        raise RequestError(400, "send either Content-Length or Transfer-Encoding, not both")
    text = {value.strip() for value in values}
    if len(text) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(text))):
        raise RequestError(400, f"Content-Length must be one non-negative integer, got {', '.join(map(repr, values))[:80]}")
    length = int(next(iter(text)))
    if length > MAX_BODY:
        raise RequestError(413, f"the body is {length:,} bytes; fnn serve accepts at most {MAX_BODY:,} (1 MiB)")
    return length


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's `App`; every response has a Content-Length (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "fnn-serve"
    sys_version = ""
    timeout = 30  # seconds a connection may sit idle, or stall mid-body, before it is closed
    routes = {"/": ("GET",), "/api/model": ("GET",), "/api/predict": ("POST",)}

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = do_GET

    def _dispatch(self) -> None:
        self._body_pending = bool(self.headers.get("Transfer-Encoding")) or self.headers.get("Content-Length", "0").strip() not in ("", "0")
        path = urlsplit(self.path).path
        methods = self.routes.get(path)
        try:
            if methods is None:
                raise RequestError(404, f"no such path {_short(path, 60)}; fnn serve has GET /, GET /api/model and POST /api/predict")
            method = "GET" if self.command == "HEAD" else self.command
            if method not in methods:
                allowed = ", ".join(methods + (("HEAD",) if "GET" in methods else ()))
                raise RequestError(405, f"{path} takes {allowed}, not {self.command}", {"Allow": allowed})
            status, body, content_type, extra = self._respond(path)
        except RequestError as err:
            status, body, content_type, extra = err.status, _json_bytes({"error": str(err)}), "application/json", err.headers
        except Exception:
            log.exception("fnn serve: internal error on %s %s", self.command, _short(self.path, 60))
            status, body, content_type, extra = 500, _json_bytes({"error": "internal error"}), "application/json", {}
        self._send(status, body, content_type, extra)

    def _respond(self, path: str) -> tuple[int, bytes, str, dict]:
        app: App = self.server.app
        if path == "/":
            return 200, app.page, "text/html; charset=utf-8", {"Content-Security-Policy": app.page_csp}
        if path == "/api/model":
            return 200, app.metadata_json, "application/json", {}
        return 200, _json_bytes(answer(app, self._read_input())), "application/json", {}

    def _read_input(self) -> np.ndarray:
        self._body_pending = True  # until the body is read: a refusal before then closes the connection
        length = _content_length(self.headers)
        media = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media == "image/jpg":
            media = "image/jpeg"
        if media not in IMAGE_TYPES + JSON_TYPES:
            raise RequestError(415, f"Content-Type {_short(media, 40)} is not read here; send application/json {EXPECTED_JSON}, or image/png or image/jpeg")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestError(408, f"the body did not arrive within {self.timeout} s") from None
        self._body_pending = False
        if len(body) < length:
            self.close_connection = True
            raise RequestError(400, f"the body ended after {len(body)} of the {length} bytes its Content-Length announced")
        if media in IMAGE_TYPES:
            return pixels_from_image(body, self.server.decode_slots)
        return pixels_from_json(body)

    def _send(self, status: int, body: bytes, content_type: str, extra: Mapping[str, str]) -> None:
        if getattr(self, "_body_pending", False):  # unread, it would be taken for the next request
            self.close_connection = True
        self.send_response(status)
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **extra,
        }
        if self.close_connection:
            headers["Connection"] = "close"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (malformed request line, headers too long, unknown method) as JSON."""
        self.close_connection = True
        try:
            message = message or HTTPStatus(code).phrase
        except ValueError:
            message = "error"
        self._send(code, _json_bytes({"error": message}), "application/json", {})

    def log_message(self, format, *args):
        if self.server.log_requests:
            super().log_message(format, *args)


def _json_bytes(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that carries the `App`, binds without a DNS lookup and keeps
    disconnects out of stderr."""

    daemon_threads = True
    request_queue_size = 64  # connections waiting to be accepted; the default 5 drops bursts

    def __init__(self, address: tuple[str, int], app: App, log_requests: bool = False):
        self.app = app
        self.log_requests = log_requests
        self.decode_slots = threading.BoundedSemaphore(os.cpu_count() or 2)
        super().__init__(address, Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # HTTPServer's would call socket.getfqdn
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request, client_address):
        """A client that went away is routine; anything else is logged, not printed raw."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            log.exception("fnn serve: error while handling a connection from %s", client_address[0])


class Server6(Server):
    address_family = socket.AF_INET6


def make_server(params, metadata: Mapping, host: str = "127.0.0.1", port: int = 8000, log_requests: bool = False) -> Server:
    """A bound, listening `ThreadingHTTPServer` serving `params`; call `serve_forever()` on it.

    params: an fnn.MLP taking 784 inputs; metadata: the model file's metadata (as `fnn.io.load_model`
    returns it; `class_names` names the outputs, default "0".."k-1"). port 0 picks a free port
    (read it from `server.server_address[1]`). log_requests: one line per request on stderr.
    Raises ValueError for a model that does not read 28x28 images, UserError when the address
    cannot be bound.
    """
    app = make_app(params, metadata)
    cls = Server6 if ":" in host else Server
    try:
        return cls((host, port), app, log_requests)
    except (OSError, OverflowError) as err:  # OverflowError: a port outside 0..65535
        reason = getattr(err, "strerror", None) or err
        raise UserError(f"cannot listen on {host}:{port} ({reason}); pick another --port or --host") from None


def url(server: Server) -> str:
    """http://host:port/ of a bound server (IPv6 hosts in brackets)."""
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
