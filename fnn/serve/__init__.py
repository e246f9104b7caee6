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

from fnn.serve.app import (
    EXPECTED_JSON,
    MAX_BODY,
    MAX_UPLOAD_PIXELS,
    App,
    RequestError,
    answer,
    image_size,
    make_app,
    pixels_from_image,
    pixels_from_json,
)
from fnn.serve.http import Handler, Server, make_server, url

__all__ = [
    "EXPECTED_JSON", "MAX_BODY", "MAX_UPLOAD_PIXELS", "App", "Handler", "RequestError", "Server", "answer",
    "image_size", "make_app", "make_server", "pixels_from_image", "pixels_from_json", "url",
]
