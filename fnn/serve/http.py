"""HTTP for `fnn serve`: the request handler (routes, status codes, size limits decided from the
headers) and the threading server.

Slow or idle clients cannot starve it: at most `MAX_CONNECTIONS` connections are served at once
(one more is answered 503 at once and closed, by the accepting thread, which never waits), and
each request must arrive whole, its headers and body, within `Handler.timeout` seconds of the
connection starting to wait for it (408, or the connection closed, otherwise). So memory is
bounded by MAX_CONNECTIONS x MAX_BODY, and a slot held by a client that trickles bytes is free
again within `Handler.timeout` seconds.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np

from fnn.errors import UserError
from fnn.serve.app import (
    EXPECTED_JSON,
    IMAGE_TYPES,
    JSON_TYPES,
    MAX_BODY,
    App,
    RequestError,
    answer,
    make_app,
    pixels_from_image,
    pixels_from_json,
    short,
)


log = logging.getLogger("fnn.serve")
MAX_CONNECTIONS = 128  # served at once: 128 x MAX_BODY (1 MiB) bounds what requests hold


class _Deadline(io.RawIOBase):
    """A connection's bytes, each read given only the time left until `deadline` (a
    time.monotonic() value): a client sending one byte a second cannot stretch a request."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline = math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)



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
    timeout = 5  # seconds for a whole request (its wait, headers and body) to arrive
    routes = {"/": ("GET",), "/api/model": ("GET",), "/api/predict": ("POST",)}

    def setup(self):
        super().setup()
        buffered, self._clock = self.rfile, _Deadline(self.connection)
        self.rfile = io.BufferedReader(self._clock)
        buffered.close()  # the socket's own reader, replaced: closed, so the socket can close

    def handle_one_request(self):
        self._clock.deadline = time.monotonic() + self.timeout  # from the wait for its first byte
        super().handle_one_request()

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = do_GET

    def _dispatch(self) -> None:
        self._body_pending = bool(self.headers.get("Transfer-Encoding")) or self.headers.get("Content-Length", "0").strip() not in ("", "0")
        path = urlsplit(self.path).path
        methods = self.routes.get(path)
        try:
            if self.headers.defects or self.headers.get_payload():  # a line that is not "Name: value"
                self._body_pending = True  # its framing is unknown: close the connection after answering
                raise RequestError(400, "a header line is malformed (a header name is a token followed at once "
                                        "by a colon, e.g. 'Transfer-Encoding: chunked')")
            if methods is None:
                raise RequestError(404, f"no such path {short(path, 60)}; fnn serve has GET /, GET /api/model and POST /api/predict")
            method = "GET" if self.command == "HEAD" else self.command
            if method not in methods:
                allowed = ", ".join(methods + (("HEAD",) if "GET" in methods else ()))
                raise RequestError(405, f"{path} takes {allowed}, not {self.command}", {"Allow": allowed})
            status, body, content_type, extra = self._respond(path)
        except RequestError as err:
            status, body, content_type, extra = err.status, _json_bytes({"error": str(err)}), "application/json", err.headers
        except Exception:
            log.exception("fnn serve: internal error on %s %s", self.command, short(self.path, 60))
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
            raise RequestError(415, f"Content-Type {short(media, 40)} is not read here; send application/json {EXPECTED_JSON}, or image/png or image/jpeg")
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
        self.connection.settimeout(self.timeout)  # each send: the reading deadline may be nearly spent
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
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")  # NaN is not JSON


class Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that carries the `App`, binds without a DNS lookup and keeps
    disconnects out of stderr."""

    daemon_threads = True
    request_queue_size = 64  # connections waiting to be accepted; the default 5 drops bursts

    max_connections = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], app: App, log_requests: bool = False):
        self.app = app
        self.log_requests = log_requests
        self.decode_slots = threading.BoundedSemaphore(os.cpu_count() or 2)
        self._served = 0  # connections being served now
        self._served_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        """Serve the connection in a thread, or, when `max_connections` are served already,
        answer 503 at once and close it (this thread accepts connections: it never waits)."""
        with self._served_lock:
            full = self._served >= self.max_connections
            self._served += not full
        if not full:
            super().process_request(request, client_address)
            return
        body = _json_bytes({"error": f"fnn serve is answering {self.max_connections} connections, its most; "
                                     "try again in a few seconds"})
        head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n")
        try:
            request.setblocking(False)
            request.send(head.encode() + body)  # a few hundred bytes into an empty send buffer
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._served_lock:
                self._served -= 1

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
